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

mod fused;
mod registry;

use ntm_addressing::{address_unfused, softmax, AddressingError, HeadParams};
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
    /// Run each step as one fused op on the CPU (the default); `false` runs the composition of
    /// candle operations that serves as its reference, for comparisons and benchmarks.
    pub fused: bool,
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
            fused: true,
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

/// State of an [`NtmMemory`] between steps, for a batch of `B` sequences.
///
/// Memory contents, weightings `[B, W + R, N]` (write heads first) and reads `[B, R * M]` live in
/// one flat tensor, which is what the fused step consumes and produces: one graph node per step
/// instead of a node per piece. The memory part is stored as `[B, M, N]`, each batch element's
/// memory column-major, the layout the fused kernels run fastest on; [`NtmState::memory`] gives
/// it back as `[B, N, M]`.
#[derive(Debug, Clone)]
pub struct NtmState {
    flat: Tensor,
    reads: Tensor,
    dims: fused::StepDims,
    batch: usize,
}

impl NtmState {
    fn new(flat: Tensor, dims: fused::StepDims, batch: usize) -> Result<Self> {
        let [lm, lw, lr] = dims.parts(batch);
        let reads = if ntm_addressing::fused::runs_on(&flat) {
            flat.apply_op1(fused::Tail { len: lr })?
        } else {
            flat.narrow(0, lm + lw, lr)?
        };
        let reads = reads.reshape((batch, dims.r * dims.m))?;
        Ok(Self {
            flat,
            reads,
            dims,
            batch,
        })
    }

    fn from_parts(
        memory: &Tensor,
        weights: &Tensor,
        reads: &Tensor,
        dims: fused::StepDims,
    ) -> Result<Self> {
        let batch = memory.dim(0)?;
        let flat = Tensor::cat(
            &[
                memory.transpose(1, 2)?.flatten_all()?,
                weights.flatten_all()?,
                reads.flatten_all()?,
            ],
            0,
        )?;
        Self::new(flat, dims, batch)
    }

    /// Memory contents `[batch, N, M]`.
    pub fn memory(&self) -> Result<Tensor> {
        let [lm, ..] = self.dims.parts(self.batch);
        Ok(self
            .flat
            .narrow(0, 0, lm)?
            .reshape((self.batch, self.dims.m, self.dims.n))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// Weightings of the write heads, then of the read heads: `[batch, W + R, N]`.
    pub fn weights(&self) -> Result<Tensor> {
        let [lm, lw, _] = self.dims.parts(self.batch);
        let heads = self.dims.w + self.dims.r;
        Ok(self
            .flat
            .narrow(0, lm, lw)?
            .reshape((self.batch, heads, self.dims.n))?)
    }

    /// Write weightings `[batch, W, N]`.
    pub fn write_weights(&self) -> Result<Tensor> {
        Ok(self.weights()?.narrow(1, 0, self.dims.w)?)
    }

    /// Read weightings `[batch, R, N]`.
    pub fn read_weights(&self) -> Result<Tensor> {
        Ok(self.weights()?.narrow(1, self.dims.w, self.dims.r)?)
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
/// On the CPU each step runs as one fused op (see [`NtmMemoryConfig::fused`]); elsewhere it is
/// composed of candle operations ([`NtmMemory::step_unfused`]).
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
/// CPU, in `f32` or `f64`, this runs [`write_fused`], elsewhere [`write_unfused`].
pub fn write(memory: &Tensor, weights: &Tensor, erase: &Tensor, add: &Tensor) -> Result<Tensor> {
    if ntm_addressing::fused::runs_on(memory) {
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

/// [`write`] composed of candle operations: the reference, differentiable on every device.
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

/// [`write`] as one custom op with an analytic backward (CPU, `f32` or `f64`).
pub fn write_fused(
    memory: &Tensor,
    weights: &Tensor,
    erase: &Tensor,
    add: &Tensor,
) -> Result<Tensor> {
    check_write(memory, weights, erase, add)?;
    let erase_add = Tensor::cat(&[erase, add], 2)?.contiguous()?;
    Ok(memory
        .contiguous()?
        .apply_op3(&weights.contiguous()?, &erase_add, fused::FusedWrite)?)
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
    type State = NtmState;

    fn interface_size(&self) -> usize {
        self.config.write_heads * self.config.write_head_size()
            + self.config.read_heads * self.config.read_head_size()
    }

    fn read_size(&self) -> usize {
        self.config.read_heads * self.config.width
    }

    fn initial_state(&self, batch: usize) -> Result<NtmState> {
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
        NtmState::from_parts(&memory, &weights, &reads, self.dims())
    }

    fn reads(&self, state: &NtmState) -> Tensor {
        state.reads.clone()
    }

    fn step(&self, interface: &Tensor, state: &NtmState) -> Result<NtmState> {
        let b = match interface.dims() {
            [b, i] if *i == self.interface_size() && *b == state.batch => *b,
            got => {
                return Err(MemoryError::Shape {
                    argument: "interface",
                    got: got.to_vec(),
                    expected: format!("[{}, {}]", state.batch, self.interface_size()),
                })
            }
        };
        if self.config.fused && ntm_addressing::fused::runs_on(&state.flat) {
            let op = fused::FusedStep::new(self.dims());
            let flat = state.flat.apply_op2(&interface.contiguous()?, op)?;
            return NtmState::new(flat, self.dims(), b);
        }
        self.step_unfused(interface, state)
    }

    fn trace(&self, state: &NtmState) -> MemoryTrace {
        let detached = NtmState {
            flat: state.flat.detach(),
            ..state.clone()
        };
        let or_empty = |t: Result<Tensor>| {
            t.unwrap_or_else(|_| {
                state
                    .reads
                    .zeros_like()
                    .unwrap_or_else(|_| state.reads.clone())
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
    fn dims(&self) -> fused::StepDims {
        let c = &self.config;
        fused::StepDims {
            n: c.rows,
            m: c.width,
            r: c.read_heads,
            w: c.write_heads,
            s: c.shifts(),
        }
    }

    /// One step composed of candle operations: the reference for the fused step, and the path
    /// on devices other than the CPU.
    pub fn step_unfused(&self, interface: &Tensor, state: &NtmState) -> Result<NtmState> {
        let c = &self.config;
        let (m, s, r, w) = (c.width, c.shifts(), c.read_heads, c.write_heads);
        let b = interface.dim(0)?;
        let raw = split(
            interface,
            &[w * m, w, w, w * s, w, w * m, w * m, r * m, r, r, r * s, r],
        )?;
        let write_params = head_params(&raw[0..5], w, m, s)?;
        let erase = sigmoid(&raw[5])?.reshape((b, w, m))?;
        let add = raw[6].tanh()?.reshape((b, w, m))?;
        let read_params = head_params(&raw[7..12], r, m, s)?;

        let previous = state.memory()?;
        let write_weights = address_unfused(&previous, &write_params, &state.write_weights()?)?;
        let memory = write_unfused(&previous, &write_weights, &erase, &add)?;
        let read_weights = address_unfused(&memory, &read_params, &state.read_weights()?)?;
        let reads = read(&memory, &read_weights)?;
        let weights = Tensor::cat(&[write_weights, read_weights], 1)?;
        NtmState::from_parts(&memory, &weights, &reads, self.dims())
    }
}
