//! A stacked GRU controller with a learned initial state.

use candle_core::Tensor;
use ntm_params::{add_bias, sigmoid, Init, Params};
use serde::{Deserialize, Serialize};

use crate::{check_input, Controller, ControllerError, Result};

/// Configuration of a [`Gru`] controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GruConfig {
    /// Hidden units per layer.
    pub size: usize,
    /// Number of stacked layers.
    pub layers: usize,
}

impl Default for GruConfig {
    fn default() -> Self {
        Self {
            size: 100,
            layers: 1,
        }
    }
}

/// One GRU layer: one matrix from the layer's input to the three gate groups, one from `h`.
#[derive(Debug, Clone)]
struct GruLayer {
    /// Input weights, transposed: `[input, 3 * size]`.
    input_t: Tensor,
    /// Input bias `[3 * size]`.
    input_bias: Tensor,
    /// Hidden weights, transposed: `[size, 3 * size]`.
    hidden_t: Tensor,
    /// Hidden bias `[3 * size]`.
    hidden_bias: Tensor,
    /// Learned initial hidden state `[size]`.
    h0: Tensor,
}

/// Hidden state of every layer of a [`Gru`], each `[batch, size]`.
#[derive(Debug, Clone)]
pub struct GruState {
    /// Hidden state per layer, bottom layer first.
    pub h: Vec<Tensor>,
}

/// A stack of GRU layers with learned initial states; the output is the top layer's `h`.
///
/// Each layer follows the cuDNN / PyTorch formulation, in which the reset gate multiplies the
/// hidden state's contribution *after* its matrix product (Cho et al. 2014 apply it before:
/// `U_n (r * h)`). With `x` the layer's input (the controller input for `layer0`, the layer
/// below's new `h` above it), `h` the layer's previous state and `*` the elementwise product:
///
/// ```text
/// r  = sigmoid(W_r x + b_r + U_r h + c_r)        reset gate
/// z  = sigmoid(W_z x + b_z + U_z h + c_z)        update gate
/// n  = tanh(W_n x + b_n + r * (U_n h + c_n))     candidate
/// h' = (1 - z) * n + z * h
/// ```
///
/// so an update gate of one keeps the state and an update gate of zero replaces it with the
/// candidate. The parameters of layer `i`, in the scope of the `params` given to [`Gru::new`]:
///
/// - `layer{i}.input.weight` `[3 * size, input]`: `W_r`, `W_z`, `W_n` stacked in that order
///   (rows `0..size` the reset gate, `size..2 * size` the update gate, the rest the candidate);
///   PyTorch's `weight_ih_l{i}`;
/// - `layer{i}.input.bias` `[3 * size]`: `b_r`, `b_z`, `b_n`; PyTorch's `bias_ih_l{i}`;
/// - `layer{i}.hidden.weight` `[3 * size, size]`: `U_r`, `U_z`, `U_n`; PyTorch's `weight_hh_l{i}`;
/// - `layer{i}.hidden.bias` `[3 * size]`: `c_r`, `c_z`, `c_n`; PyTorch's `bias_hh_l{i}`;
/// - `layer{i}.h0` `[size]`: the learned initial state.
///
/// Weights start uniform in `+-1/sqrt(size)`, biases and initial states at zero. A step costs
/// two matrix products per layer, one for the input and one for the hidden state.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use ntm_controller::{Controller, Gru, GruConfig};
/// use ntm_params::Params;
///
/// # fn main() -> Result<(), ntm_controller::ControllerError> {
/// let params = Params::new(0, DType::F32, &Device::Cpu);
/// let gru = Gru::new(&params.pp("controller"), 5, &GruConfig { size: 8, layers: 2 })?;
/// let state = gru.initial_state(3)?;
/// let (out, next) = gru.step(&Tensor::zeros((3, 5), DType::F32, &Device::Cpu)?, &state)?;
/// assert_eq!(out.dims(), &[3, 8]);
/// assert_eq!(next.h.len(), 2);
/// // Per layer: 3 gates x (input + hidden + 2 biases), plus the learned initial h.
/// assert_eq!(params.param_count(), 3 * 8 * (5 + 8 + 2) + 8 + 3 * 8 * (8 + 8 + 2) + 8);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Gru {
    layers: Vec<GruLayer>,
    input_size: usize,
    size: usize,
}

impl Gru {
    /// Builds `layer0`, `layer1`, ... in the scope of `params`.
    pub fn new(params: &Params, input_size: usize, config: &GruConfig) -> Result<Self> {
        if config.size == 0 || config.layers == 0 || input_size == 0 {
            return Err(ControllerError::Config(format!(
                "gru needs non-zero input, size and layers, got input {input_size}, size {}, layers {}",
                config.size, config.layers
            )));
        }
        let h = config.size;
        let bound = 1.0 / (h as f64).sqrt();
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let p = params.pp(&format!("layer{i}"));
            let width = if i == 0 { input_size } else { h };
            let (input, hidden) = (p.pp("input"), p.pp("hidden"));
            layers.push(GruLayer {
                input_t: input
                    .get((3 * h, width), "weight", Init::Uniform(bound))?
                    .t()?,
                input_bias: input.get(3 * h, "bias", Init::Const(0.0))?,
                hidden_t: hidden
                    .get((3 * h, h), "weight", Init::Uniform(bound))?
                    .t()?,
                hidden_bias: hidden.get(3 * h, "bias", Init::Const(0.0))?,
                h0: p.get(h, "h0", Init::Const(0.0))?,
            });
        }
        Ok(Self {
            layers,
            input_size,
            size: h,
        })
    }
}

impl Controller for Gru {
    type State = GruState;

    fn input_size(&self) -> usize {
        self.input_size
    }

    fn output_size(&self) -> usize {
        self.size
    }

    fn initial_state(&self, batch: usize) -> Result<GruState> {
        Ok(GruState {
            h: self
                .layers
                .iter()
                .map(|l| Ok(l.h0.unsqueeze(0)?.broadcast_as((batch, self.size))?))
                .collect::<Result<_>>()?,
        })
    }

    fn step(&self, input: &Tensor, state: &GruState) -> Result<(Tensor, GruState)> {
        check_input(input, self.input_size)?;
        if state.h.len() != self.layers.len() {
            return Err(ControllerError::Config(format!(
                "state has {} layers, controller {}",
                state.h.len(),
                self.layers.len()
            )));
        }
        let batch = input.dim(0)?;
        let s = self.size;
        let mut x = input.clone();
        let mut next = GruState {
            h: Vec::with_capacity(self.layers.len()),
        };
        for (i, (layer, h)) in self.layers.iter().zip(&state.h).enumerate() {
            if h.dims() != [batch, s] {
                return Err(ControllerError::Config(format!(
                    "state of layer {i} has shape {:?}, expected [{batch}, {s}]",
                    h.dims()
                )));
            }
            // The initial state is a broadcast view; other devices' matrix products want rows.
            let h = h.contiguous()?;
            let gi = add_bias(&x.matmul(&layer.input_t)?, &layer.input_bias)?;
            let gh = add_bias(&h.matmul(&layer.hidden_t)?, &layer.hidden_bias)?;
            // Reset and update gates together: columns 0..2s of both products.
            let rz = sigmoid(&(gi.narrow(1, 0, 2 * s)? + gh.narrow(1, 0, 2 * s)?)?)?;
            let (r, z) = (rz.narrow(1, 0, s)?, rz.narrow(1, s, s)?);
            let n = (gi.narrow(1, 2 * s, s)? + (r * gh.narrow(1, 2 * s, s)?)?)?.tanh()?;
            // (1 - z) * n + z * h, with one product fewer.
            let h_next = (&n + (z * (&h - &n)?)?)?;
            x = h_next.clone();
            next.h.push(h_next);
        }
        Ok((x, next))
    }
}
