//! The Differentiable Neural Computer's memory (Graves et al., Nature 2016) behind
//! [`ntm_memory::Memory`]: content lookup as in the NTM, plus a usage vector with dynamic
//! allocation of free rows and a temporal link matrix that lets read heads follow the order in
//! which rows were written.
//!
//! [`DncMemory`] has `R` read heads and `Wh` write heads over `N` rows of width `W`. Its state
//! ([`DncState`]) is the memory `[B, N, W]`, the read weightings `[B, R, N]`, the write
//! weightings `[B, Wh, N]`, the usage `[B, N]`, one link matrix per write head `[B, Wh, N, N]`,
//! their precedence weightings `[B, Wh, N]` and the read vectors. One step, in order:
//!
//! 1. usage after the previous writes and this step's frees ([`update_usage`]),
//! 2. an allocation weighting per write head from the usage sorted ascending
//!    ([`write_allocations`]),
//! 3. write weightings mixing allocation and content lookup ([`write_weighting`]),
//! 4. erase and write ([`ntm_memory::write`]),
//! 5. link matrices and precedence ([`update_links`], [`update_precedence`]),
//! 6. forward and backward weightings from the previous read weightings
//!    ([`directional_weights`]),
//! 7. read weightings from the read modes ([`read_weighting`]), and the reads.
//!
//! Content lookup is `ntm-addressing`'s cosine similarity and softmax. The pieces are public
//! functions of batched tensors, so each can be tested and reused on its own; composed of candle
//! operations they are the reference, and the path on other devices or with the kernels switched
//! off. On the CPU, steps 5 and 6 (the part whose cost grows with `N^2`) run as one op of
//! `ntm-kernels` with an analytic backward (`LinkStep`): one pass over each link matrix makes the
//! new matrix, the new precedence and both directional weightings, and the link state passes from
//! one step to the next as a single flat tensor. Depends on `candle-core`, `ntm-kernels`,
//! `ntm-addressing`, `ntm-params` and `ntm-memory` (the trait and the erase-and-add write);
//! nothing below it knows about it. The `ntm` crate registers it as the
//! memory kind [`KIND`] (`dnc`), which makes `lstm-dnc`, `ff-dnc` and `gru-dnc` models.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use ntm_dnc::{DncConfig, DncMemory};
//! use ntm_memory::Memory;
//! use ntm_params::Params;
//!
//! # fn main() -> Result<(), ntm_dnc::DncError> {
//! let params = Params::new(0, DType::F32, &Device::Cpu);
//! let config = DncConfig { rows: 16, width: 8, read_heads: 2, write_heads: 1 };
//! let memory = DncMemory::new(&params, &config)?;
//! let state = memory.initial_state(3)?;
//! let interface = Tensor::zeros((3, memory.interface_size()), DType::F32, &Device::Cpu)?;
//! let next = memory.step(&interface, &state)?;
//! assert_eq!(memory.reads(&next).dims(), &[3, 2 * 8]);
//! assert_eq!(next.links.dims(), &[3, 1, 16, 16]);
//! // Fresh memory is all free: the write head allocates one row.
//! let allocation: Vec<f32> = next.allocation.get(0)?.flatten_all()?.to_vec1()?;
//! assert!(allocation.iter().any(|&a| a > 0.99));
//! let trace = memory.trace(&next);
//! assert!(trace.extra.iter().any(|(name, _)| name == "usage"));
//! # Ok(())
//! # }
//! ```

use candle_core::{DType, Device, Tensor, TensorId};
use ntm_addressing::softmax;
use ntm_kernels::LinkStep;
use ntm_memory::{Memory, MemoryConfig, MemoryError, MemoryKind, MemoryTrace};
use ntm_params::{sigmoid, softplus, Params};
use serde::{Deserialize, Serialize};

mod allocation;
mod links;

pub use allocation::{
    allocation, exclusive_cumprod, retention, update_usage, write_allocations, write_weighting,
    ALLOCATION_EPS,
};
pub use links::{directional_weights, read_weighting, update_links, update_precedence};

/// The name of this memory in a `MemoryRegistry`.
pub const KIND: &str = "dnc";

/// The most rows a [`DncConfig`] may have: each write head keeps an `N x N` link matrix per
/// sequence, and every step of an episode keeps its own for the backward pass.
pub const MAX_ROWS: usize = 1024;

/// Errors from building or running a DNC memory.
#[derive(Debug, thiserror::Error)]
pub enum DncError {
    /// An option of the configuration is out of range.
    #[error("invalid DNC config: {option} = {value}: {reason}")]
    Config {
        /// The option.
        option: &'static str,
        /// Its value.
        value: usize,
        /// What it must be.
        reason: &'static str,
    },
    /// An argument does not have the shape the operation needs.
    #[error("{argument} has shape {got:?}, expected {expected}")]
    Shape {
        /// The argument.
        argument: &'static str,
        /// Shape given.
        got: Vec<usize>,
        /// Shape expected.
        expected: String,
    },
    /// A content-addressing error.
    #[error(transparent)]
    Addressing(#[from] ntm_addressing::AddressingError),
    /// An error from the memory write.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<DncError> for MemoryError {
    fn from(e: DncError) -> Self {
        match e {
            DncError::Config { .. } => MemoryError::Config(e.to_string()),
            DncError::Shape {
                argument,
                got,
                expected,
            } => MemoryError::Shape {
                argument,
                got,
                expected,
            },
            DncError::Addressing(e) => MemoryError::Addressing(e),
            DncError::Memory(e) => e,
            DncError::Candle(e) => MemoryError::Candle(e),
        }
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, DncError>;

pub(crate) fn expect(argument: &'static str, t: &Tensor, want: &[usize]) -> Result<()> {
    if t.dims() == want {
        Ok(())
    } else {
        Err(DncError::Shape {
            argument,
            got: t.dims().to_vec(),
            expected: format!("{want:?}"),
        })
    }
}

pub(crate) fn dims2(argument: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match *t.dims() {
        [a, b] => Ok((a, b)),
        _ => Err(DncError::Shape {
            argument,
            got: t.dims().to_vec(),
            expected: "a rank-2 tensor".into(),
        }),
    }
}

pub(crate) fn dims3(argument: &'static str, t: &Tensor) -> Result<(usize, usize, usize)> {
    match *t.dims() {
        [a, b, c] => Ok((a, b, c)),
        _ => Err(DncError::Shape {
            argument,
            got: t.dims().to_vec(),
            expected: "a rank-3 tensor".into(),
        }),
    }
}

/// Configuration of a [`DncMemory`]. The defaults are the copy task's: 128 rows of width 20,
/// one read head and one write head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DncConfig {
    /// Number of memory rows `N` (at most [`MAX_ROWS`]).
    pub rows: usize,
    /// Width of a row `W`.
    pub width: usize,
    /// Number of read heads `R`.
    pub read_heads: usize,
    /// Number of write heads `Wh`.
    pub write_heads: usize,
}

impl Default for DncConfig {
    fn default() -> Self {
        Self {
            rows: 128,
            width: 20,
            read_heads: 1,
            write_heads: 1,
        }
    }
}

impl DncConfig {
    /// Checks that the configuration describes a working memory.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("rows", self.rows),
            ("width", self.width),
            ("read_heads", self.read_heads),
            ("write_heads", self.write_heads),
        ];
        if let Some(&(option, value)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(DncError::Config {
                option,
                value,
                reason: "must be at least 1",
            });
        }
        if self.rows > MAX_ROWS {
            return Err(DncError::Config {
                option: "rows",
                value: self.rows,
                reason: "must be at most 1024: every write head keeps a rows x rows link matrix",
            });
        }
        Ok(())
    }

    /// Read modes per read head: backward and forward through each write head's links, and
    /// content.
    pub fn read_modes(&self) -> usize {
        2 * self.write_heads + 1
    }

    /// Numbers of the interface vector per step and sequence (see [`DncInterface`]).
    pub fn interface_size(&self) -> usize {
        let (w, r, wh) = (self.width, self.read_heads, self.write_heads);
        // read keys and strengths, write keys and strengths, erase and write vectors,
        // free gates, allocation and write gates, read modes
        r * w + r + wh * w + wh + 2 * wh * w + r + 2 * wh + r * self.read_modes()
    }
}

/// One step's interface, activated: what the controller asks of the memory.
///
/// The raw interface vector is laid out by kind, each kind head by head: read keys `[R * W]`,
/// read strengths `[R]`, write keys `[Wh * W]`, write strengths `[Wh]`, erase vectors
/// `[Wh * W]`, write vectors `[Wh * W]`, free gates `[R]`, allocation gates `[Wh]`, write gates
/// `[Wh]`, read modes `[R * (2 Wh + 1)]`.
///
/// Activations: keys and write vectors are linear (the model clips the interface vector);
/// strengths go through `oneplus(x) = 1 + softplus(x)`, as in the paper; erase vectors and the
/// three gates through a sigmoid; the read modes of each read head through a softmax.
///
/// Why oneplus rather than DeepMind's code's softplus: a strength of at least 1 keeps a content
/// lookup at least as sharp as the softmax of the cosine similarities, so an untrained
/// controller cannot switch content addressing off by driving the strength to zero (a uniform
/// weighting, which the read modes can already choose by other means).
#[derive(Debug, Clone)]
pub struct DncInterface {
    /// Read keys `[B, R, W]`.
    pub read_keys: Tensor,
    /// Read strengths `>= 1`, `[B, R]`.
    pub read_strengths: Tensor,
    /// Write keys `[B, Wh, W]`.
    pub write_keys: Tensor,
    /// Write strengths `>= 1`, `[B, Wh]`.
    pub write_strengths: Tensor,
    /// Erase vectors in `[0, 1]`, `[B, Wh, W]`.
    pub erase: Tensor,
    /// Write vectors `[B, Wh, W]`.
    pub write_vectors: Tensor,
    /// Free gates in `[0, 1]`, `[B, R]`.
    pub free_gates: Tensor,
    /// Allocation gates in `[0, 1]`, `[B, Wh]`.
    pub allocation_gates: Tensor,
    /// Write gates in `[0, 1]`, `[B, Wh]`.
    pub write_gates: Tensor,
    /// Read modes `[B, R, 2 Wh + 1]`: backward per write head, forward per write head,
    /// content; each head's a distribution.
    pub read_modes: Tensor,
}

/// `1 + softplus(x)`: a strength `>= 1`.
pub fn oneplus(x: &Tensor) -> Result<Tensor> {
    Ok((softplus(x).map_err(param_error)? + 1.0)?)
}

fn param_error(e: ntm_params::ParamsError) -> DncError {
    match e {
        ntm_params::ParamsError::Candle(e) => DncError::Candle(e),
        other => DncError::Memory(MemoryError::Params(other)),
    }
}

impl DncInterface {
    /// Splits and activates a raw interface vector `[B, interface_size]`.
    pub fn parse(raw: &Tensor, config: &DncConfig) -> Result<Self> {
        let (b, size) = dims2("interface", raw)?;
        if size != config.interface_size() {
            return Err(DncError::Shape {
                argument: "interface",
                got: raw.dims().to_vec(),
                expected: format!("[batch, {}]", config.interface_size()),
            });
        }
        let (w, r, wh, modes) = (
            config.width,
            config.read_heads,
            config.write_heads,
            config.read_modes(),
        );
        let mut offset = 0;
        let mut take = |len: usize| {
            let piece = raw.narrow(1, offset, len);
            offset += len;
            piece
        };
        let read_keys = take(r * w)?.reshape((b, r, w))?;
        let read_strengths = oneplus(&take(r)?)?;
        let write_keys = take(wh * w)?.reshape((b, wh, w))?;
        let write_strengths = oneplus(&take(wh)?)?;
        let erase = sigmoid(&take(wh * w)?.reshape((b, wh, w))?).map_err(param_error)?;
        let write_vectors = take(wh * w)?.reshape((b, wh, w))?;
        let free_gates = sigmoid(&take(r)?).map_err(param_error)?;
        let allocation_gates = sigmoid(&take(wh)?).map_err(param_error)?;
        let write_gates = sigmoid(&take(wh)?).map_err(param_error)?;
        let read_modes = softmax(&take(r * modes)?.reshape((b, r, modes))?, 2)?;
        Ok(Self {
            read_keys,
            read_strengths,
            write_keys,
            write_strengths,
            erase,
            write_vectors,
            free_gates,
            allocation_gates,
            write_gates,
            read_modes,
        })
    }
}

/// The state of a [`DncMemory`] between steps, for a batch of `B` sequences.
#[derive(Debug, Clone)]
pub struct DncState {
    /// Memory contents `[B, N, W]`.
    pub memory: Tensor,
    /// Read weightings `[B, R, N]`.
    pub read_weights: Tensor,
    /// Write weightings `[B, Wh, N]`.
    pub write_weights: Tensor,
    /// Usage of each row, in `[0, 1]`, `[B, N]`.
    pub usage: Tensor,
    /// One temporal link matrix per write head, `[B, Wh, N, N]`: entry `[i, j]` is the degree
    /// to which row `i` was written right after row `j`. After a fused step, a strided view of
    /// its flat link state; a step takes whatever tensor is here.
    pub links: Tensor,
    /// Precedence weightings `[B, Wh, N]`: the degree to which each row was written last (a
    /// view like `links`).
    pub precedence: Tensor,
    /// Read vectors `[B, R * W]`: what the controller sees next.
    pub reads: Tensor,
    /// The allocation weightings of the step that made this state `[B, Wh, N]` (zero at the
    /// start), kept for [`Memory::trace`].
    pub allocation: Tensor,
    /// The read modes of the step that made this state `[B, R, 2 Wh + 1]` (zero at the start),
    /// kept for [`Memory::trace`].
    pub read_modes: Tensor,
    /// The fused link step's flat state, where the step that made this state ran it; `links`
    /// and `precedence` are then views of it.
    fused_links: Option<FusedLinks>,
}

/// A flat link state of `ntm-kernels` and the tensors `links` and `precedence` were when it was
/// made: a state whose `links` or `precedence` has since been replaced is packed again.
#[derive(Debug, Clone)]
struct FusedLinks {
    state: Tensor,
    links: TensorId,
    precedence: TensorId,
}

impl DncState {
    /// The flat link state for the fused link step: the one the previous step made if `links`
    /// and `precedence` are still its views, else packed from them.
    fn link_state(&self, step: &LinkStep) -> Result<Tensor> {
        match &self.fused_links {
            Some(f) if f.links == self.links.id() && f.precedence == self.precedence.id() => {
                Ok(f.state.clone())
            }
            _ => Ok(step.pack(&self.links, &self.precedence)?),
        }
    }
}

impl DncState {
    /// The state at the start of an episode: everything zero (all rows free and empty, no
    /// links, zero reads), as in DeepMind's implementation.
    pub fn zeros(config: &DncConfig, batch: usize, dtype: DType, device: &Device) -> Result<Self> {
        let (n, w, r, wh) = (
            config.rows,
            config.width,
            config.read_heads,
            config.write_heads,
        );
        let zeros = |shape: &[usize]| Tensor::zeros(shape, dtype, device);
        Ok(Self {
            memory: zeros(&[batch, n, w])?,
            read_weights: zeros(&[batch, r, n])?,
            write_weights: zeros(&[batch, wh, n])?,
            usage: zeros(&[batch, n])?,
            links: zeros(&[batch, wh, n, n])?,
            precedence: zeros(&[batch, wh, n])?,
            reads: zeros(&[batch, r * w])?,
            allocation: zeros(&[batch, wh, n])?,
            read_modes: zeros(&[batch, r, config.read_modes()])?,
            fused_links: None,
        })
    }
}

/// The epsilon of the content lookup's cosine similarity: norms are at least about `1e-3`, as
/// with DeepMind's `sqrt(|x|^2 + 1e-6)`, where the NTM uses `1e-8`.
///
/// A DNC's rows are all zero until written, and allocation writes elsewhere only the tail of its
/// weighting (of order `1e-6`). With `1e-8` such a nearly empty row has the full cosine of its
/// direction and can win a lookup over a row that was really written; with `1e-3` its cosine is
/// of order `1e-3`, so empty rows stay neutral. At an all-zero row the cosine's slope is about
/// `1 / (eps (|k| + 1))`: of order `1e3` here rather than `1e7`. Rows of norm 1 see their cosine
/// change by about `1e-6`.
pub const COSINE_EPS: f64 = 1e-3;

/// Content weightings `softmax_i(strength * cos(key, M(i)))` of a batch of heads: `memory`
/// `[B, N, W]`, `keys` `[B, H, W]`, `strengths` `[B, H]`; returns `[B, H, N]`. This is
/// `ntm-addressing`'s content addressing with [`COSINE_EPS`]; an all-zero row has cosine 0 with
/// every key.
pub fn content(memory: &Tensor, keys: &Tensor, strengths: &Tensor) -> Result<Tensor> {
    Ok(ntm_addressing::content_eps(
        memory, keys, strengths, COSINE_EPS,
    )?)
}

/// The Differentiable Neural Computer's memory: `R` read heads and `Wh` write heads over `N`
/// rows of width `W`, with usage-based allocation and temporal links.
///
/// The memory has no parameters of its own: every episode starts from [`DncState::zeros`], and
/// everything a step does is driven by the interface vector (see [`DncInterface`] for its layout
/// and activations). See the crate documentation for the order of a step.
#[derive(Debug, Clone)]
pub struct DncMemory {
    config: DncConfig,
    dtype: DType,
    device: Device,
}

impl DncMemory {
    /// A memory of `config` in the dtype and on the device of `params`.
    pub fn new(params: &Params, config: &DncConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config: config.clone(),
            dtype: params.dtype(),
            device: params.device().clone(),
        })
    }

    /// The configuration this memory was built from.
    pub fn config(&self) -> &DncConfig {
        &self.config
    }

    /// One step from an already activated interface (see the crate documentation for the
    /// order).
    pub fn step_with(&self, i: &DncInterface, s: &DncState) -> Result<DncState> {
        let c = &self.config;
        let b = s.memory.dim(0)?;
        expect("memory", &s.memory, &[b, c.rows, c.width])?;
        // 1. Usage after the previous step's writes (no gradient through them) and this step's
        //    frees of the rows read at the previous step.
        let usage = update_usage(&s.usage, &s.write_weights, &i.free_gates, &s.read_weights)?;
        // 2. Each write head allocates in turn from what the heads before it left free.
        let gates = (&i.allocation_gates * &i.write_gates)?;
        let allocation = write_allocations(&usage, &gates)?;
        // 3. Write weightings: allocation or content lookup in the memory before the write.
        let write_content = content(&s.memory, &i.write_keys, &i.write_strengths)?;
        let write_weights = write_weighting(
            &allocation,
            &write_content,
            &i.allocation_gates,
            &i.write_gates,
        )?;
        // 4. Erase, then write, with every write head.
        let memory = ntm_memory::write(&s.memory, &write_weights, &i.erase, &i.write_vectors)?;
        // 5-7. Links from the precedence before this write, then the new precedence; follow the
        //      new links from the previous read weightings (one fused op on the CPU); mix with
        //      content lookup in the written memory.
        let read_content = content(&memory, &i.read_keys, &i.read_strengths)?;
        let (links, precedence, read_weights, fused_links);
        if ntm_kernels::runs_on(&write_weights) {
            let step = self.link_step();
            let state = step.step(&s.link_state(&step)?, &write_weights, &s.read_weights)?;
            links = step.links(&state)?;
            precedence = step.precedence(&state)?;
            // The directional weightings come backward per write head, then forward per write
            // head: the order of the read modes.
            let directions = step.directions(&state)?; // [B, R, 2 Wh, N]
            let heads = 2 * c.write_heads;
            let directed = directions
                .broadcast_mul(&i.read_modes.narrow(2, 0, heads)?.unsqueeze(3)?)?
                .sum(2)?;
            let content_mode = i.read_modes.narrow(2, heads, 1)?;
            read_weights = (read_content.broadcast_mul(&content_mode)? + directed)?;
            fused_links = Some(FusedLinks {
                state,
                links: links.id(),
                precedence: precedence.id(),
            });
        } else {
            links = update_links(&s.links, &s.precedence, &write_weights)?;
            precedence = update_precedence(&s.precedence, &write_weights)?;
            let (forward, backward) = directional_weights(&links, &s.read_weights)?;
            read_weights = read_weighting(&read_content, &forward, &backward, &i.read_modes)?;
            fused_links = None;
        }
        let reads = read_weights
            .matmul(&memory)?
            .reshape((b, c.read_heads * c.width))?;
        Ok(DncState {
            memory,
            read_weights,
            write_weights,
            usage,
            links,
            precedence,
            reads,
            allocation,
            read_modes: i.read_modes.clone(),
            fused_links,
        })
    }

    fn link_step(&self) -> LinkStep {
        LinkStep {
            rows: self.config.rows,
            read_heads: self.config.read_heads,
            write_heads: self.config.write_heads,
        }
    }

    fn check_batch(&self, interface: &Tensor, state: &DncState) -> Result<()> {
        let b = state.memory.dim(0)?;
        expect("interface", interface, &[b, self.config.interface_size()])
    }
}

impl Memory for DncMemory {
    type State = DncState;

    fn interface_size(&self) -> usize {
        self.config.interface_size()
    }

    fn read_size(&self) -> usize {
        self.config.read_heads * self.config.width
    }

    fn initial_state(&self, batch: usize) -> ntm_memory::Result<DncState> {
        Ok(DncState::zeros(
            &self.config,
            batch,
            self.dtype,
            &self.device,
        )?)
    }

    fn reads(&self, state: &DncState) -> Tensor {
        state.reads.clone()
    }

    fn step(&self, interface: &Tensor, state: &DncState) -> ntm_memory::Result<DncState> {
        self.check_batch(interface, state)?;
        let parsed = DncInterface::parse(interface, &self.config)?;
        Ok(self.step_with(&parsed, state)?)
    }

    /// Memory and weightings, and in `extra`: `usage` `[B, N]`, `allocation` `[B, Wh, N]`,
    /// `links` `[B, Wh, N, N]` and `read modes` `[B, R, 2 Wh + 1]`. All detached.
    fn trace(&self, state: &DncState) -> MemoryTrace {
        MemoryTrace {
            memory: state.memory.detach(),
            read_weights: state.read_weights.detach(),
            write_weights: state.write_weights.detach(),
            extra: vec![
                ("usage".into(), state.usage.detach()),
                ("allocation".into(), state.allocation.detach()),
                ("links".into(), state.links.detach()),
                ("read modes".into(), state.read_modes.detach()),
            ],
        }
    }
}

/// The registry entry of this memory: kind [`KIND`], options of a [`DncConfig`].
pub fn memory_kind() -> MemoryKind {
    MemoryKind::new(KIND, |params, config: &DncConfig| {
        Ok(DncMemory::new(params, config)?)
    })
}

/// A [`MemoryConfig`] of kind [`KIND`] with the options of `config`.
pub fn memory_config(config: &DncConfig) -> ntm_memory::Result<MemoryConfig> {
    MemoryConfig::from_settings(KIND, config)
}
