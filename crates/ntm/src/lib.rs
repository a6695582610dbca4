//! Neural Turing Machines (Graves, Wayne & Danihelka 2014) in Rust, on candle.
//!
//! This is the facade of the workspace: [`Ntm`] couples any [`Controller`] to any [`Memory`],
//! [`Baseline`] is a controller without memory (the paper's LSTM baseline), and both implement
//! [`SequenceModel`], the one trait that tasks and training see. A [`ModelConfig`] names a
//! controller and a memory from a [`ModelRegistry`] (`lstm-ntm`, `ff-ntm`, `gru-ntm`, `lstm`,
//! ...; with the Differentiable Neural Computer's memory, `lstm-dnc`, `ff-dnc`, `gru-dnc`), so a
//! kind registered there combines with every other. The other crates are re-exported:
//! [`addressing`], [`memory`], [`dnc`], [`controller`], [`params`].
//!
//! From a name:
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use ntm::{ModelConfig, SequenceModel};
//!
//! # fn main() -> Result<(), ntm::NtmError> {
//! let config = ModelConfig::preset("lstm-ntm")?;
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
//! From parts, with a controller or memory of your own in place of either:
//!
//! ```
//! use candle_core::{DType, Device};
//! use ntm::controller::{FeedForward, FeedForwardConfig};
//! use ntm::memory::{Memory, NtmMemory, NtmMemoryConfig};
//! use ntm::params::Params;
//! use ntm::{Ntm, SequenceModel};
//!
//! # fn main() -> Result<(), ntm::NtmError> {
//! let params = Params::new(42, DType::F32, &Device::Cpu);
//! let memory = NtmMemory::new(&params.pp("memory"), &NtmMemoryConfig::default())?;
//! let hidden = FeedForwardConfig { hidden: vec![64] };
//! let controller = FeedForward::new(&params.pp("controller"), 9 + memory.read_size(), &hidden)?;
//! let model = Ntm::from_parts(&params, 9, 8, controller, memory, 20.0)?;
//! assert_eq!(model.input_size(), 9);
//! # Ok(())
//! # }
//! ```
//!
//! `ntm_train::Trainer::from_parts` trains such a model like any built-in one.
//!
//! Each time step the controller reads the external input joined with the previous step's read
//! vectors; a linear layer maps its output to the memory's interface vector (optionally clipped
//! to `+-clip`); the memory writes, then reads; the output layer maps the controller output
//! joined with the new read vectors to the step's logits.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

pub mod footprint;

/// The largest model [`ModelRegistry::resolve`] builds to check a configuration.
const TRIAL_BUILD_BYTES: f64 = (256u64 << 20) as f64;

pub use ntm_addressing as addressing;
pub use ntm_controller as controller;
pub use ntm_dnc as dnc;
pub use ntm_kernels as kernels;
pub use ntm_memory as memory;
pub use ntm_params as params;

use ntm_controller::{
    BoxedController, Controller, ControllerConfig, ControllerError, ControllerRegistry, Lstm,
    LstmConfig,
};
use ntm_memory::{BoxedMemory, Memory, MemoryConfig, MemoryError, MemoryRegistry, MemoryTrace};
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
///
/// A model is `Send + Sync`: training may run parts of a batch on several threads at once,
/// each through `forward` on the same model.
pub trait SequenceModel: Send + Sync {
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
    /// The interface layer, bound for the steps of this sequence.
    interface: ntm_params::StepLinear,
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
            interface: self.interface.bind()?,
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
        let mut interface = state.interface.forward(&h)?;
        if self.clip > 0.0 {
            interface = ntm_params::clip(&interface, self.clip)?;
        }
        let memory = self.memory.step(&interface, &state.memory)?;
        let features = Tensor::cat(&[&h, &self.memory.reads(&memory)], 1)?;
        let next = NtmState {
            controller,
            memory,
            interface: state.interface.clone(),
        };
        Ok((features, next))
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

impl<C, M> SequenceModel for Ntm<C, M>
where
    C: Controller + Send + Sync,
    M: Memory + Send + Sync,
{
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

/// A controller and a linear output layer, no memory: the paper's LSTM baseline when the
/// controller is an [`Lstm`], and a baseline for any other controller.
#[derive(Debug, Clone)]
pub struct Baseline<C: Controller> {
    controller: C,
    output: Linear,
    params: Params,
}

/// The paper's baseline: a stack of LSTM layers and a linear output layer.
pub type LstmBaseline = Baseline<Lstm>;

impl<C: Controller> Baseline<C> {
    /// Adds the output layer (`output`, in `params`) to `controller`, which takes `input_size`
    /// inputs.
    pub fn from_parts(params: &Params, output_size: usize, controller: C) -> Result<Self> {
        let output = Linear::new(&params.pp("output"), controller.output_size(), output_size)?;
        Ok(Self {
            controller,
            output,
            params: params.clone(),
        })
    }

    /// The controller.
    pub fn controller(&self) -> &C {
        &self.controller
    }
}

impl Baseline<Lstm> {
    /// The paper's LSTM baseline: `controller.layer*` and `output` in `params`.
    pub fn new(
        params: &Params,
        input_size: usize,
        output_size: usize,
        config: &LstmConfig,
    ) -> Result<Self> {
        let lstm = Lstm::new(&params.pp("controller"), input_size, config)?;
        Self::from_parts(params, output_size, lstm)
    }
}

impl<C: Controller + Send + Sync> SequenceModel for Baseline<C> {
    fn input_size(&self) -> usize {
        self.controller.input_size()
    }

    fn output_size(&self) -> usize {
        self.output.output_size()
    }

    fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        let (steps, batch) = time_major(inputs, self.input_size())?;
        let mut state = self.controller.initial_state(batch)?;
        let mut hidden = Vec::with_capacity(steps);
        for t in 0..steps {
            let (h, next) = self.controller.step(&inputs.get(t)?, &state)?;
            hidden.push(h);
            state = next;
        }
        outputs_over_steps(&self.output, &hidden, inputs, self.input_size())
    }

    fn params(&self) -> &Params {
        &self.params
    }
}

/// The memory kind of a model without memory (a [`Baseline`]).
pub const NO_MEMORY: &str = "none";

/// A model described as a controller coupled to a memory, both chosen by name from a
/// [`ModelRegistry`]. A memory of kind [`NO_MEMORY`] gives a [`Baseline`].
///
/// In TOML:
///
/// ```text
/// clip = 20.0
/// [controller]
/// kind = "lstm"
/// size = 100
/// layers = 1
/// [memory]
/// kind = "ntm"
/// rows = 128
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The controller.
    pub controller: ControllerConfig,
    /// The memory (`kind = "none"` for none).
    pub memory: MemoryConfig,
    /// Clip the interface vector to `+-clip` (0 disables; Collier & Beel 2018 use 20).
    #[serde(default = "default_clip")]
    pub clip: f64,
    /// The dtype of the parameters and of every computation.
    #[serde(default)]
    pub dtype: Precision,
}

/// The floating-point type a model computes in: `"f32"` (the default), `"f64"` (for gradient
/// checks and reference runs) or `"bf16"` (on a GPU).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    F32,
    /// 64-bit floats.
    F64,
    /// bfloat16, on CUDA devices.
    Bf16,
}

impl Precision {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F64 => DType::F64,
            Precision::Bf16 => DType::BF16,
        }
    }

    /// An error unless `device` computes in this precision: the CPU takes `f32` and `f64`.
    pub fn check(self, device: &Device) -> Result<()> {
        if self == Precision::Bf16 && device.is_cpu() {
            return Err(NtmError::Config(
                "model.dtype = \"bf16\" needs a CUDA device: on the CPU a model computes in f32 or f64"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn default_clip() -> f64 {
    20.0
}

impl Default for ModelConfig {
    /// The LSTM NTM of the paper's copy task: LSTM controller of 100 units, NTM memory with its
    /// defaults (128 x 20, one read and one write head; [`ModelRegistry::resolve`] spells them
    /// out), clip 20.
    fn default() -> Self {
        Self {
            controller: ControllerConfig::new("lstm", 100, 1),
            memory: MemoryConfig::named("ntm"),
            clip: default_clip(),
            dtype: Precision::F32,
        }
    }
}

impl ModelConfig {
    /// The model's name: `controller-memory` (`lstm-ntm`, `gru-ntm`), or the controller's alone
    /// without memory (`lstm`). The same names select presets.
    pub fn name(&self) -> String {
        if self.memory.kind == NO_MEMORY {
            self.controller.kind.clone()
        } else {
            format!("{}-{}", self.controller.kind, self.memory.kind)
        }
    }

    /// Whether the model has a memory.
    pub fn has_memory(&self) -> bool {
        self.memory.kind != NO_MEMORY
    }

    /// The preset called `name` from the built-in registry (see [`ModelRegistry::preset`]).
    pub fn preset(name: &str) -> Result<Self> {
        ModelRegistry::default().preset(name)
    }

    /// Builds the model from the built-in registry, with fresh parameters drawn from `seed`.
    pub fn build(
        &self,
        input_size: usize,
        output_size: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Box<dyn SequenceModel>> {
        ModelRegistry::default().build(self, input_size, output_size, seed, dtype, device)
    }
}

/// The controllers and memories a [`ModelConfig`] can name: `ff`, `lstm` and `gru`
/// controllers and the `ntm` and `dnc` memories by default, and any a user registers.
///
/// Every controller × memory pair is a model, named `controller-memory`, and every controller
/// alone is a baseline: registering a kind makes all its combinations buildable.
///
/// ```
/// use candle_core::{DType, Device};
/// use ntm::{ModelRegistry, SequenceModel};
///
/// # fn main() -> Result<(), ntm::NtmError> {
/// let models = ModelRegistry::default();
/// let mut config = models.preset("ff-ntm")?;
/// config.controller.size = 32;
/// let model = models.build(&config, 9, 8, 0, DType::F32, &Device::Cpu)?;
/// assert_eq!(model.output_size(), 8);
/// assert!(models.names().contains(&"gru-ntm".to_string()));
/// assert!(models.names().contains(&"lstm-dnc".to_string()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ModelRegistry {
    /// The controller kinds.
    pub controllers: ControllerRegistry,
    /// The memory kinds.
    pub memories: MemoryRegistry,
}

impl Default for ModelRegistry {
    /// The built-in kinds: the controllers of `ntm-controller`, the `ntm` memory of `ntm-memory`
    /// and the `dnc` memory of `ntm-dnc`. The DNC is added here, not in `MemoryRegistry`, because
    /// `ntm-memory` sits below `ntm-dnc` and knows nothing of it.
    fn default() -> Self {
        let mut memories = MemoryRegistry::default();
        if memories.get(ntm_dnc::KIND).is_none() {
            // Cannot fail: the name is free, as just checked.
            let _ = memories.register(ntm_dnc::memory_kind());
        }
        Self {
            controllers: ControllerRegistry::default(),
            memories,
        }
    }
}

impl ModelRegistry {
    /// Every model name: each controller alone, then each controller with each memory.
    pub fn names(&self) -> Vec<String> {
        let controllers = self.controllers.names();
        let mut names: Vec<String> = controllers.iter().map(|c| c.to_string()).collect();
        for c in &controllers {
            for m in self.memories.names() {
                names.push(format!("{c}-{m}"));
            }
        }
        names
    }

    /// The controller and memory kinds of model `name` (`lstm-ntm` gives `lstm` and `ntm`;
    /// `lstm` gives `lstm` and [`NO_MEMORY`]).
    pub fn split_name<'a>(&self, name: &'a str) -> Result<(&'a str, &'a str)> {
        if self.controllers.get(name).is_some() {
            return Ok((name, NO_MEMORY));
        }
        name.match_indices('-')
            .map(|(i, _)| (&name[..i], &name[i + 1..]))
            .find(|(c, m)| self.controllers.get(c).is_some() && self.memories.get(m).is_some())
            .ok_or_else(|| {
                NtmError::Config(format!(
                    "unknown model `{name}` (known: {})",
                    self.names().join(", ")
                ))
            })
    }

    /// The model called `name` with its controller at 100 units in one layer and its memory at
    /// its defaults (the paper's copy-task sizes), clip 20.
    pub fn preset(&self, name: &str) -> Result<ModelConfig> {
        let (controller, memory) = self.split_name(name)?;
        let memory = if memory == NO_MEMORY {
            MemoryConfig::named(NO_MEMORY)
        } else {
            self.memories.default_config(memory)?
        };
        Ok(ModelConfig {
            controller: ControllerConfig::new(controller, 100, 1),
            memory,
            clip: default_clip(),
            dtype: Precision::F32,
        })
    }

    /// Whether the controller kind of `config` keeps state between steps (unknown kinds count
    /// as recurrent).
    pub fn recurrent(&self, config: &ModelConfig) -> bool {
        self.controllers
            .get(&config.controller.kind)
            .is_none_or(|k| k.recurrent())
    }

    /// `config` with every memory option it leaves out at the memory's default, after checking
    /// that it builds.
    pub fn resolve(&self, config: &ModelConfig) -> Result<ModelConfig> {
        let mut resolved = config.clone();
        if config.has_memory() {
            resolved.memory = self.memories.default_config(&config.memory.kind)?;
            for (key, value) in &config.memory.options {
                resolved.memory.options.insert(key.clone(), value.clone());
            }
        }
        // Building checks every value; a tiny input and output keep it cheap. A model too big
        // to build casually is not built here: its values are checked when it is built for
        // real, after the caller has had the chance to compare its footprint with the memory
        // at hand.
        let params = footprint::model_footprint(&resolved, 1, 1).params;
        if params * 4.0 <= TRIAL_BUILD_BYTES {
            self.build(&resolved, 1, 1, 0, DType::F32, &Device::Cpu)?;
        }
        Ok(resolved)
    }

    /// Builds the model `config` describes, taking `input_size` features per step and giving
    /// `output_size` logits, with fresh parameters drawn from `seed`.
    pub fn build(
        &self,
        config: &ModelConfig,
        input_size: usize,
        output_size: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Box<dyn SequenceModel>> {
        let params = footprint::model_footprint(config, input_size, output_size).params;
        if params * 4.0 > footprint::ABSURD_BYTES {
            return Err(NtmError::Config(format!(
                "model {} would need about {} of parameters; check its sizes",
                config.name(),
                footprint::human_bytes(params * 4.0)
            )));
        }
        let c = &config.controller;
        if c.size == 0 || c.layers == 0 {
            return Err(NtmError::Config(format!(
                "controller size and layers must be >= 1 (got {} and {})",
                c.size, c.layers
            )));
        }
        let params = Params::new(seed, dtype, device);
        let controller_params = params.pp("controller");
        if !config.has_memory() {
            if let Some(key) = config.memory.options.keys().next() {
                return Err(NtmError::Config(format!(
                    "a model without memory takes no memory options (got `{key}`)"
                )));
            }
            let controller = self.controllers.build(&controller_params, input_size, c)?;
            return Ok(Box::new(Baseline::from_parts(
                &params,
                output_size,
                controller,
            )?));
        }
        let memory: BoxedMemory = self.memories.build(&params.pp("memory"), &config.memory)?;
        let controller: BoxedController =
            self.controllers
                .build(&controller_params, input_size + memory.read_size(), c)?;
        Ok(Box::new(Ntm::from_parts(
            &params,
            input_size,
            output_size,
            controller,
            memory,
            config.clip,
        )?))
    }
}
