//! The internal kernels crate of the NTM workspace: every fused CPU kernel, each behind a
//! candle custom op with an analytic backward, and nothing else.
//!
//! It holds the whole addressing pipeline over a packed parameter tensor ([`address()`]), the
//! multi-head erase-and-add write ([`write()`]), a whole NTM memory step ([`MemoryStep`]) over a
//! [`StepState`], whose memory passes from step to step beside candle's graph, with the
//! [`tail`] op through which its reads leave the state's tensor, the temporal links of a DNC
//! memory (link matrices, precedence, forward and backward weightings) over a flat link state
//! ([`LinkStep`]), the LSTM cell update ([`lstm_cell`]), the bias addition and clipping of
//! the layers ([`add_bias`], [`clip`]), a weight's gradient summed over the steps beside the
//! graph ([`StepWeight`]), and the optimisers' updates of a variable in one pass ([`rmsprop`],
//! [`adam`], plain functions rather than graph ops, equal to the bit to their composition of
//! candle operations). At the paper's sizes a step is tiny, and composed of candle operations it would be
//! about two hundred graph nodes whose per-node overhead dominates; these ops make it a handful.
//!
//! The domain crates wrap it: `ntm-addressing`, `ntm-memory`, `ntm-dnc`, `ntm-controller`,
//! `ntm-params` and `ntm-train` (its optimisers) each ask [`runs_on`] and then either call the op here or run their own
//! composition of candle operations, which is the reference the ops are tested against (same
//! values and gradients) and the path on other devices. Nothing here knows about parameters,
//! configurations or the domain crates' types: the API is tensors in, tensors out, and the
//! slice kernels behind it (column-major memory, sixteen-lane sums, vectorisable exponentials)
//! are private. It depends on `candle-core`, `gemm` (candle's matrix products), `num-traits`
//! and `multiversion` only.
//!
//! The hot loops (the memory step and its backward, the LSTM cell, the DNC's link step, the
//! addressing op, the optimisers' updates, the bound weights' gradient sums) are compiled twice, for the baseline target and for x86-64 with AVX2 and FMA,
//! and the CPU's features pick one at run time (the `multiversion` crate): about 10% more
//! sequences per second at batch 32, with no build flags and no failure on older CPUs. Both
//! compile the same operations in the same order (Rust never contracts a multiply and an add
//! into a fused one), so their results agree to the last bit, and a seed gives the same run
//! whichever a machine takes.
//!
//! Every op runs on the CPU in `f32` and `f64`; on other devices or dtypes it returns candle's
//! error, as it does for shapes that do not fit together. Functions return candle's
//! [`Result`](candle_core::Result): the ops live inside candle's autograd, which speaks it.
//!
//! The fused path can be switched off for the whole process with [`set_enabled`]: [`runs_on`]
//! then answers `false`, and every wrapper takes its reference path.
//!
//! ```
//! use candle_core::{Device, Tensor};
//!
//! # fn main() -> candle_core::Result<()> {
//! let x = Tensor::new(&[[1f32, -5.0], [3.0, 0.5]], &Device::Cpu)?;
//! let bias = Tensor::new(&[0.5f32, 1.0], &Device::Cpu)?;
//! assert!(ntm_kernels::runs_on(&x));
//! let y = ntm_kernels::clip(&ntm_kernels::add_bias(&x, &bias)?, 2.0)?;
//! assert_eq!(y.to_vec2::<f32>()?, [[1.5, -2.0], [2.0, 1.5]]);
//!
//! // Process-wide: callers take their reference path until it is switched back on.
//! ntm_kernels::set_enabled(false);
//! assert!(!ntm_kernels::runs_on(&x));
//! ntm_kernels::set_enabled(true);
//! # Ok(())
//! # }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Tensor};

mod address;
mod links;
mod lstm;
mod optim;
mod pointwise;
mod real;
mod shared;
mod step;
mod storage;
mod write;

pub use address::address;
pub use links::LinkStep;
pub use lstm::lstm_cell;
pub use optim::{adam, rmsprop, Adam, Rmsprop};
pub use pointwise::{add_bias, clip};
pub use shared::StepWeight;
pub use step::{tail, MemoryStep, StepState};
pub use write::write;

/// Added to norms in the cosine similarity so that a zero row or key gives zero similarity.
pub const COSINE_EPS: f64 = 1e-8;

/// Added to a weighting before it is raised to the power `gamma`, so the power and its gradient
/// stay finite where the weighting is zero.
pub const SHARPEN_EPS: f64 = 1e-12;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Switches the fused kernels on or off for the whole process (they start on).
///
/// Off, [`runs_on`] answers `false` for every tensor, so the memory step, addressing, the
/// write, the DNC's link step, the LSTM cell, `add_bias` and `clip` of the domain crates all take their reference
/// composition of candle operations from their next call on. The switch is one process-wide
/// flag shared by all threads: flipping it in one thread changes the path of every model
/// running in the others (both paths compute the same function, to rounding). The ops of this
/// crate, called directly, ignore it.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the fused kernels are switched on (see [`set_enabled`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether the fused kernels run on `t`: they are switched on, and `t` is a CPU tensor of
/// `f32` or `f64`. Where this is `false` the domain crates compose candle operations instead.
pub fn runs_on(t: &Tensor) -> bool {
    enabled() && t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}
