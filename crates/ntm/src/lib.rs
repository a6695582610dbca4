//! Neural Turing Machines (Graves, Wayne & Danihelka 2014) in Rust, on candle.
//!
//! This is the facade of the workspace: [`Ntm`] couples any [`Controller`] to any [`Memory`],
//! [`LstmBaseline`] is the memory-less baseline of the paper, and both implement
//! [`SequenceModel`], the one trait that tasks and training see. [`ModelConfig`] builds any of
//! the three standard models from a serialisable description. The other crates are re-exported:
//! [`addressing`], [`memory`], [`controller`], [`params`].
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use ntm::{ModelConfig, ModelKind, SequenceModel};
//!
//! # fn main() -> Result<(), ntm::NtmError> {
//! let config = ModelConfig { kind: ModelKind::LstmNtm, ..Default::default() };
//! // The copy task: 8 bits plus a delimiter channel in, 8 bits out.
//! let model = config.build(9, 8, 42, DType::F32, &Device::Cpu)?;
//! let inputs = Tensor::zeros((5, 2, 9), DType::F32, &Device::Cpu)?; // [time, batch, input]
//! let logits = model.forward(&inputs)?;
//! assert_eq!(logits.dims(), &[5, 2, 8]);
//! assert_eq!(model.param_count(), 62_736);
//! # Ok(())
//! # }
//! ```
//!
//! Each time step the controller reads the external input joined with the previous step's read
//! vectors; a linear layer maps its output to the memory's interface vector (optionally clipped
//! to `+-clip`); the memory writes, then reads; the output layer maps the controller output
//! joined with the new read vectors to the step's logits.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

pub use ntm_addressing as addressing;
pub use ntm_controller as controller;
pub use ntm_kernels as kernels;
pub use ntm_memory as memory;
pub use ntm_params as params;

use ntm_controller::{
    Controller, ControllerError, FeedForward, FeedForwardConfig, Lstm, LstmConfig,
};
use ntm_memory::{Memory, MemoryError, MemoryTrace, NtmMemory, NtmMemoryConfig};
use ntm_params::{Linear, Params, ParamsError};

// The README's Rust example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctest;

/// Errors from building or running a model.
#[derive(Debug, thiserror::Error)]
pub enum NtmError {
    /// The configuration cannot describe a working model.
    #[error("invalid model config: {0}")]
    Config(String),
    /// The input sequence does not have the shape the model needs.
    #[error("model input has shape {got:?}, expected [time, batch, {expected}]")]
    InputShape {
        /// Shape given.
        got: Vec<usize>,
        /// Input features expected.
        expected: usize,
    },
    /// A controller error.
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// A memory error.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// A parameter error.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, NtmError>;

/// A model that maps an input sequence to a sequence of output logits.
///
/// Sequences are time-major: inputs `[time, batch, input_size]`, outputs
/// `[time, batch, output_size]`. Every sequence starts from the model's initial state.
pub trait SequenceModel {
    /// Input features per step.
    fn input_size(&self) -> usize;

    /// Output features (logits) per step.
    fn output_size(&self) -> usize;

    /// Runs the model over `inputs` and returns the logits of every step.
    fn forward(&self, inputs: &Tensor) -> Result<Tensor>;

    /// Like [`SequenceModel::forward`], also returning the memory trace after every step
    /// (empty for models without memory).
    fn forward_traced(&self, inputs: &Tensor) -> Result<(Tensor, Vec<MemoryTrace>)> {
        Ok((self.forward(inputs)?, Vec::new()))
    }

    /// The model's parameters.
    fn params(&self) -> &Params;

    /// Number of trainable scalars.
    fn param_count(&self) -> usize {
        self.params().param_count()
    }
}

fn time_major(inputs: &Tensor, expected: usize) -> Result<(usize, usize)> {
    match *inputs.dims() {
        [t, b, i] if i == expected => Ok((t, b)),
        _ => Err(NtmError::InputShape {
            got: inputs.dims().to_vec(),
            expected,
        }),
    }
}

/// The output layer applied once to the features `[B, F]` of every step, giving `[T, B, O]`:
/// it does not feed back, so one matrix product serves all steps. No steps is an error about
/// `inputs`, which a model taking `input_size` features per step was given.
fn outputs_over_steps(
    output: &Linear,
    features: &[Tensor],
    inputs: &Tensor,
    input_size: usize,
) -> Result<Tensor> {
    if features.is_empty() {
        return Err(NtmError::InputShape {
            got: inputs.dims().to_vec(),
            expected: input_size,
        });
    }
    let features = Tensor::stack(features, 0)?;
    let (steps, batch, width) = features.dims3()?;
    Ok(output
        .forward(&features.reshape((steps * batch, width))?)?
        .reshape((steps, batch, ()))?)
}

/// The recurrent state of an [`Ntm`]: its controller's and its memory's.
#[derive(Debug, Clone)]
pub struct NtmState<CS, MS> {
    /// Controller state.
    pub controller: CS,
    /// Memory state.
    pub memory: MS,
}

/// The state type of an `Ntm<C, M>`.
pub type StateOf<C, M> = NtmState<<C as Controller>::State, <M as Memory>::State>;

/// A Neural Turing Machine over any controller and memory.
#[derive(Debug, Clone)]
pub struct Ntm<C: Controller, M: Memory> {
    controller: C,
    memory: M,
    interface: Linear,
    output: Linear,
    clip: f64,
    params: Params,
    input_size: usize,
}

impl<C: Controller, M: Memory> Ntm<C, M> {
    /// Couples `controller` and `memory`, adding the interface and output layers in `params`.
    ///
    /// The controller must take `input_size + memory.read_size()` inputs. `clip > 0` clips the
    /// interface vector to `[-clip, clip]` (Collier & Beel 2018 use 20); `0` disables it.
    pub fn from_parts(
        params: &Params,
        input_size: usize,
        output_size: usize,
        controller: C,
        memory: M,
        clip: f64,
    ) -> Result<Self> {
        if controller.input_size() != input_size + memory.read_size() {
            return Err(NtmError::Config(format!(
                "controller takes {} inputs; input {input_size} + reads {} = {}",
                controller.input_size(),
                memory.read_size(),
                input_size + memory.read_size()
            )));
        }
        if output_size == 0 || clip < 0.0 || !clip.is_finite() {
            return Err(NtmError::Config(format!(
                "need output_size > 0 and a finite clip >= 0 (got {output_size}, {clip})"
            )));
        }
        let h = controller.output_size();
        Ok(Self {
            interface: Linear::new(&params.pp("interface"), h, memory.interface_size())?,
            output: Linear::new(&params.pp("output"), h + memory.read_size(), output_size)?,
            controller,
            memory,
            clip,
            params: params.clone(),
            input_size,
        })
    }

    /// The controller.
    pub fn controller(&self) -> &C {
        &self.controller
    }

    /// The memory.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// The state every episode starts from, for `batch` sequences.
    pub fn initial_state(&self, batch: usize) -> Result<StateOf<C, M>> {
        Ok(NtmState {
            controller: self.controller.initial_state(batch)?,
            memory: self.memory.initial_state(batch)?,
        })
    }

    /// One time step: `input` is `[batch, input_size]`; returns the logits and the next state.
    pub fn step(&self, input: &Tensor, state: &StateOf<C, M>) -> Result<(Tensor, StateOf<C, M>)> {
        let (features, next) = self.advance(input, state)?;
        Ok((self.output.forward(&features)?, next))
    }

    /// One time step up to the output layer: the controller output joined with the new reads,
    /// and the next state.
    fn advance(&self, input: &Tensor, state: &StateOf<C, M>) -> Result<(Tensor, StateOf<C, M>)> {
        let previous_reads = self.memory.reads(&state.memory);
        let (h, controller) = self.controller.step(
            &Tensor::cat(&[input, &previous_reads], 1)?,
            &state.controller,
        )?;
        let mut interface = self.interface.forward(&h)?;
        if self.clip > 0.0 {
            interface = ntm_params::clip(&interface, self.clip)?;
        }
        let memory = self.memory.step(&interface, &state.memory)?;
        let features = Tensor::cat(&[&h, &self.memory.reads(&memory)], 1)?;
        Ok((features, NtmState { controller, memory }))
    }

    fn run(&self, inputs: &Tensor, trace: bool) -> Result<(Tensor, Vec<MemoryTrace>)> {
        let (steps, batch) = time_major(inputs, self.input_size)?;
        let mut state = self.initial_state(batch)?;
        let mut features = Vec::with_capacity(steps);
        let mut traces = Vec::new();
        for t in 0..steps {
            let (f, next) = self.advance(&inputs.get(t)?, &state)?;
            if trace {
                traces.push(self.memory.trace(&next.memory));
            }
            features.push(f);
            state = next;
        }
        Ok((
            outputs_over_steps(&self.output, &features, inputs, self.input_size)?,
            traces,
        ))
    }
}

impl<C: Controller, M: Memory> SequenceModel for Ntm<C, M> {
    fn input_size(&self) -> usize {
        self.input_size
    }

    fn output_size(&self) -> usize {
        self.output.output_size()
    }

    fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        Ok(self.run(inputs, false)?.0)
    }

    fn forward_traced(&self, inputs: &Tensor) -> Result<(Tensor, Vec<MemoryTrace>)> {
        self.run(inputs, true)
    }

    fn params(&self) -> &Params {
        &self.params
    }
}

/// The paper's baseline: a stack of LSTM layers and a linear output layer, no memory.
#[derive(Debug, Clone)]
pub struct LstmBaseline {
    lstm: Lstm,
    output: Linear,
    params: Params,
}

impl LstmBaseline {
    /// Builds `lstm.layer*` and `output` in `params`.
    pub fn new(
        params: &Params,
        input_size: usize,
        output_size: usize,
        config: &LstmConfig,
    ) -> Result<Self> {
        let lstm = Lstm::new(&params.pp("lstm"), input_size, config)?;
        let output = Linear::new(&params.pp("output"), config.size, output_size)?;
        Ok(Self {
            lstm,
            output,
            params: params.clone(),
        })
    }
}

impl SequenceModel for LstmBaseline {
    fn input_size(&self) -> usize {
        self.lstm.input_size()
    }

    fn output_size(&self) -> usize {
        self.output.output_size()
    }

    fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        let (steps, batch) = time_major(inputs, self.input_size())?;
        let mut state = self.lstm.initial_state(batch)?;
        let mut hidden = Vec::with_capacity(steps);
        for t in 0..steps {
            let (h, next) = self.lstm.step(&inputs.get(t)?, &state)?;
            hidden.push(h);
            state = next;
        }
        outputs_over_steps(&self.output, &hidden, inputs, self.input_size())
    }

    fn params(&self) -> &Params {
        &self.params
    }
}

/// The three models of the paper's experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// NTM with a feedforward controller.
    FfNtm,
    /// NTM with an LSTM controller.
    #[default]
    LstmNtm,
    /// Stacked LSTM without memory.
    Lstm,
}

impl ModelKind {
    /// All kinds, in the order of the paper's tables.
    pub const ALL: [ModelKind; 3] = [ModelKind::FfNtm, ModelKind::LstmNtm, ModelKind::Lstm];

    /// The kebab-case name (`ff-ntm`, `lstm-ntm`, `lstm`).
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::FfNtm => "ff-ntm",
            ModelKind::LstmNtm => "lstm-ntm",
            ModelKind::Lstm => "lstm",
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = NtmError;

    fn from_str(s: &str) -> Result<Self> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                NtmError::Config(format!(
                    "unknown model `{s}` (expected ff-ntm, lstm-ntm or lstm)"
                ))
            })
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A serialisable description of one of the standard models.
///
/// `size` and `layers` describe the controller (or, for [`ModelKind::Lstm`], the whole
/// network): `layers` feedforward layers or LSTM layers of `size` units each. `memory` is
/// ignored by the LSTM baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Which model.
    pub kind: ModelKind,
    /// Units per controller layer.
    pub size: usize,
    /// Number of controller layers.
    pub layers: usize,
    /// Clip the interface vector to `+-clip` (0 disables).
    pub clip: f64,
    /// The memory of the NTM models.
    pub memory: NtmMemoryConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::LstmNtm,
            size: 100,
            layers: 1,
            clip: 20.0,
            memory: NtmMemoryConfig::default(),
        }
    }
}

impl ModelConfig {
    /// Builds the model with fresh parameters drawn from `seed`.
    pub fn build(
        &self,
        input_size: usize,
        output_size: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Box<dyn SequenceModel>> {
        let params = Params::new(seed, dtype, device);
        if self.size == 0 || self.layers == 0 {
            return Err(NtmError::Config(format!(
                "size and layers must be >= 1 (got {} and {})",
                self.size, self.layers
            )));
        }
        let ctrl_params = params.pp("controller");
        let memory = || NtmMemory::new(&params.pp("memory"), &self.memory);
        Ok(match self.kind {
            ModelKind::FfNtm => {
                let memory = memory()?;
                let config = FeedForwardConfig {
                    hidden: vec![self.size; self.layers],
                };
                let controller =
                    FeedForward::new(&ctrl_params, input_size + memory.read_size(), &config)?;
                Box::new(Ntm::from_parts(
                    &params,
                    input_size,
                    output_size,
                    controller,
                    memory,
                    self.clip,
                )?)
            }
            ModelKind::LstmNtm => {
                let memory = memory()?;
                let config = LstmConfig {
                    size: self.size,
                    layers: self.layers,
                };
                let controller = Lstm::new(&ctrl_params, input_size + memory.read_size(), &config)?;
                Box::new(Ntm::from_parts(
                    &params,
                    input_size,
                    output_size,
                    controller,
                    memory,
                    self.clip,
                )?)
            }
            ModelKind::Lstm => {
                let config = LstmConfig {
                    size: self.size,
                    layers: self.layers,
                };
                Box::new(LstmBaseline::new(
                    &params,
                    input_size,
                    output_size,
                    &config,
                )?)
            }
        })
    }
}
