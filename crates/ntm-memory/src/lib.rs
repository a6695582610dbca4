//! External memory for memory-augmented networks: the [`Memory`] trait and [`NtmMemory`], the
//! Neural Turing Machine's `N x M` matrix with `R` read heads and `W` write heads.
//!
//! A memory is driven by an *interface vector*: the controller emits `interface_size()` raw
//! numbers per step and the memory turns them into head parameters (activations included),
//! updates its state and produces `read_size()` numbers of read vectors for the next step. The
//! trait says nothing about how addressing works, so a DNC-style memory (usage, allocation,
//! temporal links) implements the same trait with its own state type.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use ntm_memory::{Memory, NtmMemory, NtmMemoryConfig};
//! use ntm_params::Params;
//!
//! # fn main() -> Result<(), ntm_memory::MemoryError> {
//! let params = Params::new(1, DType::F32, &Device::Cpu);
//! let config = NtmMemoryConfig { rows: 16, width: 4, read_heads: 2, ..Default::default() };
//! let memory = NtmMemory::new(&params.pp("memory"), &config)?;
//! let state = memory.initial_state(3)?;
//! let interface = Tensor::zeros((3, memory.interface_size()), DType::F32, &Device::Cpu)?;
//! let next = memory.step(&interface, &state)?;
//! assert_eq!(memory.reads(&next).dims(), &[3, 2 * 4]);
//! assert_eq!(memory.trace(&next).read_weights.dims(), &[3, 2, 16]);
//! # Ok(())
//! # }
//! ```

use candle_core::Tensor;

mod registry;

use ntm_addressing::{address_unfused, softmax, AddressingError, HeadParams};
use ntm_kernels::{MemoryStep, StepState};
use ntm_params::{sigmoid, softplus, Init, Params, ParamsError};
pub use registry::{BoxedMemory, BoxedMemoryState, MemoryConfig, MemoryKind, MemoryRegistry};
use serde::{Deserialize, Serialize};

/// Errors from building or running a memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The configuration cannot describe a working memory.
    #[error("invalid memory config: {0}")]
    Config(String),
    /// An argument does not have the shape the memory needs.
    #[error("{argument} has shape {got:?}, expected {expected}")]
    Shape {
        /// The argument.
        argument: &'static str,
        /// Shape given.
        got: Vec<usize>,
        /// Shape expected.
        expected: String,
    },
    /// An addressing error.
    #[error(transparent)]
    Addressing(#[from] AddressingError),
    /// A parameter error.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, MemoryError>;

/// What a memory exposes for inspection after a step.
#[derive(Debug, Clone)]
pub struct MemoryTrace {
    /// Memory contents `[batch, N, M]`.
    pub memory: Tensor,
    /// Read weightings `[batch, R, N]`.
    pub read_weights: Tensor,
    /// Write weightings `[batch, W, N]`.
    pub write_weights: Tensor,
    /// Further named signals a memory type wants to show (a DNC's usage, say).
    pub extra: Vec<(String, Tensor)>,
}

/// A differentiable external memory driven by an interface vector.
pub trait Memory {
    /// Everything carried from one step to the next (contents, weightings, reads).
    type State: Clone;

    /// Raw numbers the memory consumes from the controller per step and batch element.
    fn interface_size(&self) -> usize;

    /// Numbers of read-vector output per step and batch element.
    fn read_size(&self) -> usize;

    /// The state at the start of an episode, for `batch` sequences.
    fn initial_state(&self, batch: usize) -> Result<Self::State>;

    /// The read vectors held in `state`, `[batch, read_size]`: what the controller sees next.
    fn reads(&self, state: &Self::State) -> Tensor;

    /// One step: `interface` is `[batch, interface_size]`; returns the next state.
    fn step(&self, interface: &Tensor, state: &Self::State) -> Result<Self::State>;

    /// Contents and weightings of `state`, for figures and debugging.
    fn trace(&self, state: &Self::State) -> MemoryTrace;
}

/// How the memory matrix is filled at the start of every episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryInit {
    /// Every cell `1e-6` (Collier & Beel 2018: fastest and most stable).
    #[default]
    Constant,
    /// A trained `N x M` matrix.
    Learned,
    /// A fixed matrix drawn once from the model seed (normal, standard deviation 0.5).
    Random,
}

/// The value of every cell under [`MemoryInit::Constant`].
pub const CONSTANT_INIT: f64 = 1e-6;

/// Configuration of an [`NtmMemory`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NtmMemoryConfig {
    /// Number of memory rows `N`.
    pub rows: usize,
    /// Width of a row `M`.
    pub width: usize,
    /// Number of read heads `R`.
    pub read_heads: usize,
    /// Number of write heads `W`.
    pub write_heads: usize,
    /// Largest shift `r`: heads can move by `-r..=r` rows per step.
    pub shift_range: usize,
    /// How memory starts each episode.
    pub init: MemoryInit,
}

impl Default for NtmMemoryConfig {
    fn default() -> Self {
        Self {
            rows: 128,
            width: 20,
            read_heads: 1,
            write_heads: 1,
            shift_range: 1,
            init: MemoryInit::Constant,
        }
    }
}

impl NtmMemoryConfig {
    /// Number of shift offsets `2r + 1`.
    pub fn shifts(&self) -> usize {
        2 * self.shift_range + 1
    }

    /// Interface numbers of one read head: key, beta, gate, shift, gamma.
    pub fn read_head_size(&self) -> usize {
        self.width + 3 + self.shifts()
    }

    /// Interface numbers of one write head: a read head's, plus erase and add vectors.
    pub fn write_head_size(&self) -> usize {
        self.read_head_size() + 2 * self.width
    }

    fn validate(&self) -> Result<()> {
        let c = self;
        if c.rows == 0 || c.width == 0 || c.read_heads == 0 || c.write_heads == 0 {
            return Err(MemoryError::Config(format!(
                "rows, width, read_heads and write_heads must be >= 1 (got {} x {}, {} read, {} write)",
                c.rows, c.width, c.read_heads, c.write_heads
            )));
        }
        if c.shifts() > c.rows {
            return Err(MemoryError::Config(format!(
                "shift_range {} needs at least {} rows, memory has {}",
                c.shift_range,
                c.shifts(),
                c.rows
            )));
        }
        Ok(())
    }
}

/// State of an [`NtmMemory`] between steps, for a batch of `B` sequences: the memory contents
/// `[B, N, M]`, the weightings `[B, W + R, N]` (write heads first) and the read vectors
/// `[B, R * M]`.
///
/// A state comes in the form of the path that made it. The fused step keeps its kernel's
/// [`StepState`] (the weightings and reads as one tensor, one graph node per step instead of a
/// node per piece, and the memory beside candle's graph); the reference step keeps the three
/// tensors as they are. The accessors give the same shapes for both, and [`Memory::step`] takes
/// either: when the kernels are switched on or off in the middle of an episode
/// ([`ntm_kernels::set_enabled`]), it converts the state once.
#[derive(Debug, Clone)]
pub struct NtmMemoryState {
    form: Form,
    reads: Tensor,
    kernel: MemoryStep,
    batch: usize,
}

/// The two forms of an [`NtmMemoryState`].
#[derive(Debug, Clone)]
enum Form {
    /// The fused step's state ([`ntm_kernels::MemoryStep`] knows its layout).
    Flat(StepState),
    /// Memory `[B, N, M]` and weightings `[B, W + R, N]`, as the reference step uses them.
    Parts { memory: Tensor, weights: Tensor },
}

impl NtmMemoryState {
    fn from_flat(flat: StepState, kernel: MemoryStep, batch: usize) -> Result<Self> {
        Ok(Self {
            reads: kernel.reads(&flat)?,
            form: Form::Flat(flat),
            kernel,
            batch,
        })
    }

    fn from_parts(memory: Tensor, weights: Tensor, reads: Tensor, kernel: MemoryStep) -> Self {
        Self {
            batch: reads.dims().first().copied().unwrap_or(0),
            form: Form::Parts { memory, weights },
            reads,
            kernel,
        }
    }

    /// The state as the fused step's.
    fn to_flat(&self) -> Result<StepState> {
        match &self.form {
            Form::Flat(flat) => Ok(flat.clone()),
            Form::Parts { memory, weights } => {
                Ok(self.kernel.pack(memory, weights, &self.reads)?)
            }
        }
    }

    /// The state as the reference step's memory and weightings.
    fn to_parts(&self) -> Result<(Tensor, Tensor)> {
        match &self.form {
            Form::Flat(flat) => Ok((self.kernel.memory(flat)?, self.kernel.weights(flat)?)),
            Form::Parts { memory, weights } => Ok((memory.clone(), weights.clone())),
        }
    }

    /// The same state cut off from the graph.
    fn detach(&self) -> Self {
        let form = match &self.form {
            Form::Flat(flat) => Form::Flat(flat.detach()),
            Form::Parts { memory, weights } => Form::Parts {
                memory: memory.detach(),
                weights: weights.detach(),
            },
        };
        Self {
            form,
            reads: self.reads.detach(),
            ..self.clone()
        }
    }

    /// Memory contents `[batch, N, M]`.
    pub fn memory(&self) -> Result<Tensor> {
        match &self.form {
            Form::Flat(flat) => Ok(self.kernel.memory(flat)?),
            Form::Parts { memory, .. } => Ok(memory.clone()),
        }
    }

    /// Weightings of the write heads, then of the read heads: `[batch, W + R, N]`.
    pub fn weights(&self) -> Result<Tensor> {
        match &self.form {
            Form::Flat(flat) => Ok(self.kernel.weights(flat)?),
            Form::Parts { weights, .. } => Ok(weights.clone()),
        }
    }

    /// Write weightings `[batch, W, N]`.
    pub fn write_weights(&self) -> Result<Tensor> {
        Ok(self.weights()?.narrow(1, 0, self.kernel.write_heads)?)
    }

    /// Read weightings `[batch, R, N]`.
    pub fn read_weights(&self) -> Result<Tensor> {
        Ok(self
            .weights()?
            .narrow(1, self.kernel.write_heads, self.kernel.read_heads)?)
    }

    /// Read vectors `[batch, R * M]`.
    pub fn reads(&self) -> &Tensor {
        &self.reads
    }
}

/// The Neural Turing Machine memory: `W` write heads then `R` read heads per step.
///
/// Each step the write heads address the current memory and write (erase, then add); the read
/// heads then address and read the updated memory, so a read can see the same step's write.
///
/// The interface vector is laid out by kind rather than by head, which lets every head of a kind
/// be addressed in one batched call: for the write heads, keys `[W*M]`, betas `[W]`, gates `[W]`,
/// shifts `[W*S]`, gammas `[W]`, erase vectors `[W*M]`, add vectors `[W*M]`; then the same for
/// the read heads without erase and add. Activations: keys and adds `tanh`, betas `softplus`,
/// gates and erases `sigmoid`, shifts `softmax`, gammas `1 + softplus`.
///
/// On the CPU each step runs as one fused op ([`ntm_kernels::MemoryStep`]); elsewhere, or with the
/// kernels switched off ([`ntm_kernels::set_enabled`]), it is composed of candle operations
/// ([`NtmMemory::step_unfused`]).
#[derive(Debug, Clone)]
pub struct NtmMemory {
    config: NtmMemoryConfig,
    /// Learned initial read weighting logits `[R, N]`.
    read_w0: Tensor,
    /// Learned initial write weighting logits `[W, N]`.
    write_w0: Tensor,
    /// Learned initial read vectors `[R * M]`.
    reads0: Tensor,
    /// The initial memory `[N, M]` (a parameter only for [`MemoryInit::Learned`]).
    memory0: Tensor,
}

/// Initial weighting logits that focus every head on row 0 (about 0.99 of the mass).
fn focus_first_row(rows: usize) -> impl Fn(usize) -> Vec<f64> {
    move |count| {
        (0..count)
            .map(|i| if i % rows == 0 { 0.0 } else { -10.0 })
            .collect()
    }
}

/// The parameters of an [`NtmMemory`] that hold one value per memory row: its heads' initial
/// weighting logits, `[heads, rows]`. [`widen_row_logits`] carries them to a larger memory.
pub const ROW_PARAMETERS: [&str; 2] = ["initial_read_weights", "initial_write_weights"];

/// A logit whose weight is exactly 0 next to any trained logit, in `f32` and `f64`.
const NO_MASS: f64 = -1e4;

/// Initial weighting logits `[H, N]` of a memory with `N` rows, carried to one with `rows >= N`
/// rows: `[H, rows]`.
///
/// Heads move circularly, so a logit's meaning is its offset from row 0. The rows at offsets
/// `0..=N/2` stay at the start, those at offsets `-1, -2, ..` (the end of the trained memory)
/// move to the end of the new one, and the rows between get no weight: each head's initial
/// weighting over the kept rows is exactly the trained one. This is how a model trained with a
/// small memory runs with a larger one (`ntm eval --rows`).
///
/// # Errors
/// If `logits` is not 2-D or `rows` is smaller than its `N`.
pub fn widen_row_logits(logits: &Tensor, rows: usize) -> Result<Tensor> {
    let (heads, n) = logits.dims2()?;
    if rows < n {
        return Err(MemoryError::Config(format!(
            "cannot carry {n} rows of initial weightings to {rows} rows: a memory only grows"
        )));
    }
    if rows == n {
        return Ok(logits.clone());
    }
    let front = n / 2 + 1;
    let gap =
        Tensor::full(NO_MASS, (heads, rows - n), logits.device())?.to_dtype(logits.dtype())?;
    Ok(Tensor::cat(
        &[
            &logits.narrow(1, 0, front)?,
            &gap,
            &logits.narrow(1, front, n - front)?,
        ],
        1,
    )?)
}

impl NtmMemory {
    /// Builds the memory's learned initial values in the scope of `params`.
    pub fn new(params: &Params, config: &NtmMemoryConfig) -> Result<Self> {
        config.validate()?;
        let (n, m) = (config.rows, config.width);
        let (r, w) = (config.read_heads, config.write_heads);
        let memory0 = match config.init {
            MemoryInit::Constant => {
                Tensor::full(CONSTANT_INIT, (n, m), params.device())?.to_dtype(params.dtype())?
            }
            MemoryInit::Learned => params.get(
                (n, m),
                "initial_memory",
                Init::Uniform(1.0 / (m as f64).sqrt()),
            )?,
            MemoryInit::Random => {
                let values = Init::Normal(0.5).draw(params.seed(), "memory.random_init", n * m);
                Tensor::from_vec(values, (n, m), params.device())?.to_dtype(params.dtype())?
            }
        };
        Ok(Self {
            config: config.clone(),
            read_w0: params.get_with((r, n), "initial_read_weights", focus_first_row(n))?,
            write_w0: params.get_with((w, n), "initial_write_weights", focus_first_row(n))?,
            reads0: params.get(r * m, "initial_reads", Init::Uniform(0.1))?,
            memory0,
        })
    }

    /// The configuration this memory was built from.
    pub fn config(&self) -> &NtmMemoryConfig {
        &self.config
    }
}

/// Reads `[B, H, M]` from `memory` `[B, N, M]` with weightings `[B, H, N]`: `r = sum_i w(i) M(i)`.
pub fn read(memory: &Tensor, weights: &Tensor) -> Result<Tensor> {
    Ok(weights.matmul(memory)?)
}

/// Writes with `W` heads at once: every head erases, then every head adds.
///
/// `M' = M * prod_h (1 - w_h e_h^T) + sum_h w_h a_h^T`; `weights` is `[B, W, N]`, `erase` and
/// `add` are `[B, W, M]`. The product and the sum do not depend on the order of the heads. On the
/// CPU, in `f32` or `f64`, this runs [`write_fused`] (unless the kernels are switched off),
/// elsewhere [`write_unfused`].
pub fn write(memory: &Tensor, weights: &Tensor, erase: &Tensor, add: &Tensor) -> Result<Tensor> {
    if ntm_kernels::runs_on(memory) {
        write_fused(memory, weights, erase, add)
    } else {
        write_unfused(memory, weights, erase, add)
    }
}

fn check_write(memory: &Tensor, weights: &Tensor, erase: &Tensor, add: &Tensor) -> Result<()> {
    let (b, n, m) = memory.dims3()?;
    let w = weights.dim(1)?;
    let expect = |argument: &'static str, t: &Tensor, want: &[usize]| {
        if t.dims() == want {
            Ok(())
        } else {
            Err(MemoryError::Shape {
                argument,
                got: t.dims().to_vec(),
                expected: format!("{want:?}"),
            })
        }
    };
    expect("weights", weights, &[b, w, n])?;
    expect("erase", erase, &[b, w, m])?;
    expect("add", add, &[b, w, m])
}

/// [`write()`] composed of candle operations: the reference, differentiable on every device.
pub fn write_unfused(
    memory: &Tensor,
    weights: &Tensor,
    erase: &Tensor,
    add: &Tensor,
) -> Result<Tensor> {
    check_write(memory, weights, erase, add)?;
    let heads = weights.dim(1)?;
    let w_t = weights.transpose(1, 2)?.contiguous()?; // [B, N, W]
    let mut kept = memory.clone();
    for h in 0..heads {
        let outer = w_t.narrow(2, h, 1)?.matmul(&erase.narrow(1, h, 1)?)?; // [B, N, M]
        kept = (&kept - (&kept * outer)?)?;
    }
    Ok((kept + w_t.matmul(add)?)?)
}

/// [`write()`] as one custom op with an analytic backward ([`ntm_kernels::write`]; CPU, `f32` or
/// `f64`, whether or not the kernels are switched on).
pub fn write_fused(
    memory: &Tensor,
    weights: &Tensor,
    erase: &Tensor,
    add: &Tensor,
) -> Result<Tensor> {
    check_write(memory, weights, erase, add)?;
    Ok(ntm_kernels::write(memory, weights, erase, add)?)
}

/// Splits `[B, len]` into consecutive pieces of the given widths.
fn split(x: &Tensor, widths: &[usize]) -> Result<Vec<Tensor>> {
    let mut offset = 0;
    let mut out = Vec::with_capacity(widths.len());
    for &w in widths {
        out.push(x.narrow(1, offset, w)?);
        offset += w;
    }
    Ok(out)
}

/// Turns the five raw interface pieces of `heads` heads into activated [`HeadParams`].
fn head_params(raw: &[Tensor], heads: usize, width: usize, shifts: usize) -> Result<HeadParams> {
    let b = raw[0].dim(0)?;
    Ok(HeadParams {
        key: raw[0].tanh()?.reshape((b, heads, width))?,
        beta: softplus(&raw[1])?,
        gate: sigmoid(&raw[2])?,
        shift: softmax(&raw[3].reshape((b, heads, shifts))?, 2)?,
        gamma: (softplus(&raw[4])? + 1.0)?,
    })
}

impl Memory for NtmMemory {
    type State = NtmMemoryState;

    fn interface_size(&self) -> usize {
        self.config.write_heads * self.config.write_head_size()
            + self.config.read_heads * self.config.read_head_size()
    }

    fn read_size(&self) -> usize {
        self.config.read_heads * self.config.width
    }

    fn initial_state(&self, batch: usize) -> Result<NtmMemoryState> {
        let c = &self.config;
        let expand = |t: &Tensor, heads: usize| -> Result<Tensor> {
            Ok(softmax(t, 1)?
                .unsqueeze(0)?
                .broadcast_as((batch, heads, c.rows))?)
        };
        let weights = Tensor::cat(
            &[
                expand(&self.write_w0, c.write_heads)?,
                expand(&self.read_w0, c.read_heads)?,
            ],
            1,
        )?;
        let memory = self
            .memory0
            .unsqueeze(0)?
            .broadcast_as((batch, c.rows, c.width))?;
        let reads = self
            .reads0
            .unsqueeze(0)?
            .broadcast_as((batch, self.read_size()))?;
        let kernel = self.kernel();
        if ntm_kernels::runs_on(&memory) {
            let flat = kernel.pack(&memory, &weights, &reads)?;
            NtmMemoryState::from_flat(flat, kernel, batch)
        } else {
            let memory = memory.contiguous()?;
            Ok(NtmMemoryState::from_parts(memory, weights, reads, kernel))
        }
    }

    fn reads(&self, state: &NtmMemoryState) -> Tensor {
        state.reads.clone()
    }

    fn step(&self, interface: &Tensor, state: &NtmMemoryState) -> Result<NtmMemoryState> {
        let b = self.check_interface(interface, state)?;
        if ntm_kernels::runs_on(interface) {
            let kernel = self.kernel();
            let flat = kernel.step(&state.to_flat()?, interface)?;
            return NtmMemoryState::from_flat(flat, kernel, b);
        }
        self.step_unfused(interface, state)
    }

    fn trace(&self, state: &NtmMemoryState) -> MemoryTrace {
        let detached = state.detach();
        let or_empty = |t: Result<Tensor>| {
            t.unwrap_or_else(|_| {
                detached
                    .reads
                    .zeros_like()
                    .unwrap_or_else(|_| detached.reads.clone())
            })
        };
        MemoryTrace {
            memory: or_empty(detached.memory()),
            write_weights: or_empty(detached.write_weights()),
            read_weights: or_empty(detached.read_weights()),
            extra: Vec::new(),
        }
    }
}

impl NtmMemory {
    /// The sizes of the fused step's kernel.
    fn kernel(&self) -> MemoryStep {
        let c = &self.config;
        MemoryStep {
            rows: c.rows,
            width: c.width,
            read_heads: c.read_heads,
            write_heads: c.write_heads,
            shifts: c.shifts(),
        }
    }

    /// The batch size of a step, after checking that `interface` is `[B, interface_size]` for
    /// the batch of `state`.
    fn check_interface(&self, interface: &Tensor, state: &NtmMemoryState) -> Result<usize> {
        match interface.dims() {
            [b, i] if *i == self.interface_size() && *b == state.batch => Ok(*b),
            got => Err(MemoryError::Shape {
                argument: "interface",
                got: got.to_vec(),
                expected: format!("[{}, {}]", state.batch, self.interface_size()),
            }),
        }
    }

    /// One step composed of candle operations: the reference for the fused step, and the path
    /// on devices other than the CPU. Takes a state of either form and returns one of the
    /// reference form, whose memory stays `[B, N, M]` from step to step.
    pub fn step_unfused(
        &self,
        interface: &Tensor,
        state: &NtmMemoryState,
    ) -> Result<NtmMemoryState> {
        let c = &self.config;
        let (m, s, r, w) = (c.width, c.shifts(), c.read_heads, c.write_heads);
        let b = self.check_interface(interface, state)?;
        let raw = split(
            interface,
            &[w * m, w, w, w * s, w, w * m, w * m, r * m, r, r, r * s, r],
        )?;
        let write_params = head_params(&raw[0..5], w, m, s)?;
        let erase = sigmoid(&raw[5])?.reshape((b, w, m))?;
        let add = raw[6].tanh()?.reshape((b, w, m))?;
        let read_params = head_params(&raw[7..12], r, m, s)?;

        let (previous, weights) = state.to_parts()?;
        let write_weights = address_unfused(&previous, &write_params, &weights.narrow(1, 0, w)?)?;
        let memory = write_unfused(&previous, &write_weights, &erase, &add)?;
        let read_weights = address_unfused(&memory, &read_params, &weights.narrow(1, w, r)?)?;
        let reads = read(&memory, &read_weights)?.reshape((b, r * m))?;
        let weights = Tensor::cat(&[write_weights, read_weights], 1)?;
        Ok(NtmMemoryState::from_parts(
            memory,
            weights,
            reads,
            self.kernel(),
        ))
    }
}
