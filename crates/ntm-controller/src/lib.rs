//! Controllers for memory-augmented networks: the [`Controller`] trait, a [`FeedForward`]
//! controller, and stacked [`Lstm`] and [`Gru`] controllers with learned initial states.
//!
//! A controller maps one time step's input `[batch, input_size]` and its recurrent state to an
//! output `[batch, output_size]` and the next state. It knows nothing about memory: the model
//! joins the previous reads onto the input before calling it. Parameters come from
//! [`ntm_params::Params`], so they are seeded and named (`controller.layer0.weight`).
//! On the CPU the LSTM's cell update runs as one fused op of `ntm-kernels` ([`lstm_cell`]), with
//! [`lstm_cell_unfused`] as its reference.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use ntm_controller::{Controller, Lstm, LstmConfig};
//! use ntm_params::Params;
//!
//! # fn main() -> Result<(), ntm_controller::ControllerError> {
//! let params = Params::new(0, DType::F32, &Device::Cpu);
//! let lstm = Lstm::new(&params.pp("controller"), 5, &LstmConfig { size: 8, layers: 2 })?;
//! let state = lstm.initial_state(3)?;
//! let (out, _next) = lstm.step(&Tensor::zeros((3, 5), DType::F32, &Device::Cpu)?, &state)?;
//! assert_eq!(out.dims(), &[3, 8]);
//! // Per layer: 4 gates x (input + hidden + bias), plus the learned initial h and c.
//! assert_eq!(params.param_count(), 4 * 8 * (5 + 8 + 1) + 2 * 8 + 4 * 8 * (8 + 8 + 1) + 2 * 8);
//! # Ok(())
//! # }
//! ```

mod cell;
mod gru;
mod registry;

pub use cell::{lstm_cell, lstm_cell_unfused};
pub use gru::{Gru, GruConfig, GruState};
pub use registry::{
    BoxedController, BoxedState, ControllerConfig, ControllerKind, ControllerRegistry,
};

use candle_core::Tensor;
use ntm_params::{Init, Linear, Params, ParamsError};
use serde::{Deserialize, Serialize};

/// Errors from building or running a controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The configuration cannot describe a working controller.
    #[error("invalid controller config: {0}")]
    Config(String),
    /// The input or state does not match the controller.
    #[error("controller input has shape {got:?}, expected [batch, {expected}]")]
    InputShape {
        /// Shape given.
        got: Vec<usize>,
        /// Input features expected.
        expected: usize,
    },
    /// Gate pre-activations and a cell state that do not fit together (`[B, 4n]` and `[B, n]`).
    #[error("lstm cell: gates have shape {gates:?} and the cell state {cell:?}, expected [B, 4n] and [B, n] with n >= 1")]
    CellShape {
        /// Shape of the gate pre-activations.
        gates: Vec<usize>,
        /// Shape of the cell state.
        cell: Vec<usize>,
    },
    /// A parameter or layer error.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ControllerError>;

/// One step of a (possibly recurrent) network.
pub trait Controller {
    /// Recurrent state carried between steps (`()` for a feedforward controller).
    type State: Clone;

    /// Input features per step.
    fn input_size(&self) -> usize;

    /// Output features per step.
    fn output_size(&self) -> usize;

    /// The state at the start of an episode, for `batch` sequences.
    fn initial_state(&self, batch: usize) -> Result<Self::State>;

    /// One step: `input` is `[batch, input_size]`; returns `[batch, output_size]` and the new state.
    fn step(&self, input: &Tensor, state: &Self::State) -> Result<(Tensor, Self::State)>;
}

fn check_input(input: &Tensor, expected: usize) -> Result<()> {
    match input.dims() {
        [_, i] if *i == expected => Ok(()),
        got => Err(ControllerError::InputShape {
            got: got.to_vec(),
            expected,
        }),
    }
}

/// Configuration of a [`FeedForward`] controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedForwardConfig {
    /// Sizes of the hidden layers, in order; the last one is the output size.
    pub hidden: Vec<usize>,
}

impl Default for FeedForwardConfig {
    fn default() -> Self {
        Self { hidden: vec![100] }
    }
}

/// A stack of fully connected `tanh` layers.
#[derive(Debug, Clone)]
pub struct FeedForward {
    layers: Vec<Linear>,
    input_size: usize,
}

impl FeedForward {
    /// Builds the layers `layer0`, `layer1`, ... in the scope of `params`.
    pub fn new(params: &Params, input_size: usize, config: &FeedForwardConfig) -> Result<Self> {
        if config.hidden.is_empty() || config.hidden.contains(&0) || input_size == 0 {
            return Err(ControllerError::Config(format!(
                "feedforward needs a non-zero input and at least one non-zero hidden layer, got input {input_size} and hidden {:?}",
                config.hidden
            )));
        }
        let mut layers = Vec::with_capacity(config.hidden.len());
        let mut width = input_size;
        for (i, &size) in config.hidden.iter().enumerate() {
            layers.push(Linear::new(&params.pp(&format!("layer{i}")), width, size)?);
            width = size;
        }
        Ok(Self { layers, input_size })
    }
}

/// A feedforward controller keeps nothing from step to step but its layers, bound for the
/// steps of one sequence ([`Linear::bind`]).
#[derive(Debug, Clone)]
pub struct FeedForwardState {
    layers: Vec<ntm_params::StepLinear>,
}

impl Controller for FeedForward {
    type State = FeedForwardState;

    fn input_size(&self) -> usize {
        self.input_size
    }

    fn output_size(&self) -> usize {
        self.layers
            .last()
            .map_or(self.input_size, Linear::output_size)
    }

    fn initial_state(&self, _batch: usize) -> Result<FeedForwardState> {
        Ok(FeedForwardState {
            layers: self
                .layers
                .iter()
                .map(Linear::bind)
                .collect::<ntm_params::Result<_>>()?,
        })
    }

    fn step(&self, input: &Tensor, state: &FeedForwardState) -> Result<(Tensor, FeedForwardState)> {
        check_input(input, self.input_size)?;
        if state.layers.len() != self.layers.len() {
            return Err(ControllerError::Config(format!(
                "state has {} layers, controller {}",
                state.layers.len(),
                self.layers.len()
            )));
        }
        let mut x = input.clone();
        for layer in &state.layers {
            x = layer.forward(&x)?.tanh()?;
        }
        Ok((x, state.clone()))
    }
}

/// Configuration of an [`Lstm`] controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LstmConfig {
    /// Hidden units per layer.
    pub size: usize,
    /// Number of stacked layers.
    pub layers: usize,
}

impl Default for LstmConfig {
    fn default() -> Self {
        Self {
            size: 100,
            layers: 1,
        }
    }
}

/// One LSTM layer: the four gates share one matrix over `[input, h]`.
#[derive(Debug, Clone)]
struct LstmLayer {
    /// The gates' pre-activations from the input joined with `h`: `[input + size]` to
    /// `[4 * size]`.
    gates: Linear,
    h0: Tensor,
    c0: Tensor,
}

/// Hidden and cell state of every layer, each `[batch, size]`.
#[derive(Debug, Clone)]
pub struct LstmState {
    /// Hidden state per layer.
    pub h: Vec<Tensor>,
    /// Cell state per layer.
    pub c: Vec<Tensor>,
    /// Each layer's gates, bound for the steps of this sequence ([`Linear::bind`]).
    gates: Vec<ntm_params::StepLinear>,
}

/// A stack of LSTM layers with learned initial states; the output is the top layer's `h`.
///
/// Gates are ordered input, forget, cell, output; the forget-gate bias starts at 1.
#[derive(Debug, Clone)]
pub struct Lstm {
    layers: Vec<LstmLayer>,
    input_size: usize,
    size: usize,
}

impl Lstm {
    /// Builds `layer0`, `layer1`, ... in the scope of `params`.
    pub fn new(params: &Params, input_size: usize, config: &LstmConfig) -> Result<Self> {
        if config.size == 0 || config.layers == 0 || input_size == 0 {
            return Err(ControllerError::Config(format!(
                "lstm needs non-zero input, size and layers, got input {input_size}, size {}, layers {}",
                config.size, config.layers
            )));
        }
        let h = config.size;
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let p = params.pp(&format!("layer{i}"));
            let input = if i == 0 { input_size } else { h };
            let gates = p.pp("gates");
            let bound = 1.0 / (h as f64).sqrt();
            let weight = gates.get((4 * h, input + h), "weight", Init::Uniform(bound))?;
            // Gate order i, f, g, o: the forget gate starts open (bias 1).
            let bias = gates.get_with(4 * h, "bias", |count| {
                (0..count)
                    .map(|j| if (h..2 * h).contains(&j) { 1.0 } else { 0.0 })
                    .collect()
            })?;
            layers.push(LstmLayer {
                gates: Linear::from_parts(&gates, weight, bias),
                h0: p.get(h, "h0", Init::Const(0.0))?,
                c0: p.get(h, "c0", Init::Const(0.0))?,
            });
        }
        Ok(Self {
            layers,
            input_size,
            size: h,
        })
    }
}

impl Controller for Lstm {
    type State = LstmState;

    fn input_size(&self) -> usize {
        self.input_size
    }

    fn output_size(&self) -> usize {
        self.size
    }

    fn initial_state(&self, batch: usize) -> Result<LstmState> {
        let expand = |t: &Tensor| -> Result<Tensor> {
            Ok(t.unsqueeze(0)?.broadcast_as((batch, self.size))?)
        };
        Ok(LstmState {
            h: self
                .layers
                .iter()
                .map(|l| expand(&l.h0))
                .collect::<Result<_>>()?,
            c: self
                .layers
                .iter()
                .map(|l| expand(&l.c0))
                .collect::<Result<_>>()?,
            gates: self
                .layers
                .iter()
                .map(|l| l.gates.bind())
                .collect::<ntm_params::Result<_>>()?,
        })
    }

    fn step(&self, input: &Tensor, state: &LstmState) -> Result<(Tensor, LstmState)> {
        check_input(input, self.input_size)?;
        let mut x = input.clone();
        let mut next = LstmState {
            h: Vec::with_capacity(self.layers.len()),
            c: Vec::with_capacity(self.layers.len()),
            gates: state.gates.clone(),
        };
        for i in 0..self.layers.len() {
            let (h, c, gates) = match (state.h.get(i), state.c.get(i), state.gates.get(i)) {
                (Some(h), Some(c), Some(gates)) => (h, c, gates),
                _ => {
                    return Err(ControllerError::Config(format!(
                        "state has {} layers, controller {}",
                        state.h.len(),
                        self.layers.len()
                    )))
                }
            };
            let z = gates.forward(&Tensor::cat(&[&x, h], 1)?)?;
            let (h_next, c_next) = lstm_cell(&z, c)?;
            x = h_next.clone();
            next.h.push(h_next);
            next.c.push(c_next);
        }
        Ok((x, next))
    }
}
