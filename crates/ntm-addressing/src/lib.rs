//! Differentiable Neural Turing Machine addressing on batched candle tensors.
//!
//! The four stages of Graves et al. (2014), section 3.3, each a pure function of tensors:
//!
//! 1. [`content`]: `w_c(i) = softmax_i(beta * cos(k, M(i)))` (eq. 5-6),
//! 2. [`interpolate`]: `w_g = g * w_c + (1 - g) * w_prev` (eq. 7),
//! 3. [`shift`]: circular convolution with a shift weighting over offsets `-r..=r` (eq. 8),
//! 4. [`sharpen`]: `w(i) = w_s(i)^gamma / sum_j w_s(j)^gamma` (eq. 9),
//!
//! and [`address`], which chains them. Every function works on a whole batch of heads at once:
//! weightings are `[batch, heads, N]`, memory is `[batch, N, M]`, and there is no loop over the
//! batch or the heads. The functions take already-activated parameters (`beta > 0`,
//! `0 <= g <= 1`, `s` a distribution, `gamma >= 1`); turning raw controller outputs into those is
//! the memory's job. This crate never owns parameters; it depends on `candle-core` and on
//! `ntm-kernels`, the workspace's internal crate of fused CPU ops, which runs [`address`] as one
//! op where it can.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use ntm_addressing::{address, HeadParams};
//!
//! # fn main() -> Result<(), ntm_addressing::AddressingError> {
//! let dev = Device::Cpu;
//! // One batch element, one head, a memory of 4 rows of width 2.
//! let memory = Tensor::new(&[[[1f32, 0.], [0., 1.], [-1., 0.], [0., -1.]]], &dev)?;
//! let params = HeadParams {
//!     key: Tensor::new(&[[[0f32, 1.]]], &dev)?,
//!     beta: Tensor::new(&[[50f32]], &dev)?,
//!     gate: Tensor::new(&[[1f32]], &dev)?,
//!     shift: Tensor::new(&[[[0f32, 0., 1.]]], &dev)?, // shift by +1
//!     gamma: Tensor::new(&[[1f32]], &dev)?,
//! };
//! let previous = Tensor::new(&[[[0.25f32, 0.25, 0.25, 0.25]]], &dev)?;
//! let w = address(&memory, &params, &previous)?;
//! let w: Vec<f32> = w.flatten_all()?.to_vec1()?;
//! // The key matches row 1; the shift moves the focus to row 2.
//! assert!(w[2] > 0.99);
//! # Ok(())
//! # }
//! ```

use candle_core::{DType, Device, Tensor};

pub mod gradcheck;

pub use ntm_kernels::{COSINE_EPS, SHARPEN_EPS};

/// Errors from the addressing functions.
#[derive(Debug, thiserror::Error)]
pub enum AddressingError {
    /// An argument does not have the shape the stage needs.
    #[error("{stage}: `{argument}` has shape {got:?}, expected {expected}")]
    Shape {
        /// The addressing stage that was called.
        stage: &'static str,
        /// The offending argument.
        argument: &'static str,
        /// The shape that was given.
        got: Vec<usize>,
        /// A description of the shape that was expected.
        expected: String,
    },
    /// The shift weighting covers more offsets than the memory has rows, or an even number.
    #[error("shift: {width} shift offsets do not fit a memory of {rows} rows (need an odd count <= rows)")]
    ShiftWidth {
        /// Number of offsets in the shift weighting (`2r + 1`).
        width: usize,
        /// Number of memory rows.
        rows: usize,
    },
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, AddressingError>;

/// The activated parameters of a batch of heads for one time step.
///
/// `B` is the batch size, `H` the number of heads, `M` the memory width and `S = 2r + 1` the
/// number of shift offsets.
#[derive(Debug, Clone)]
pub struct HeadParams {
    /// Keys `k`, `[B, H, M]`.
    pub key: Tensor,
    /// Key strengths `beta > 0`, `[B, H]`.
    pub beta: Tensor,
    /// Interpolation gates `g` in `[0, 1]`, `[B, H]`.
    pub gate: Tensor,
    /// Shift weightings `s` over offsets `-r..=r`, each a distribution, `[B, H, S]`.
    pub shift: Tensor,
    /// Sharpening exponents `gamma >= 1`, `[B, H]`.
    pub gamma: Tensor,
}

fn check(stage: &'static str, argument: &'static str, t: &Tensor, want: &[usize]) -> Result<()> {
    if t.dims() == want {
        Ok(())
    } else {
        Err(AddressingError::Shape {
            stage,
            argument,
            got: t.dims().to_vec(),
            expected: format!("{want:?}"),
        })
    }
}

fn dims3(stage: &'static str, argument: &'static str, t: &Tensor) -> Result<(usize, usize, usize)> {
    match *t.dims() {
        [a, b, c] => Ok((a, b, c)),
        _ => Err(AddressingError::Shape {
            stage,
            argument,
            got: t.dims().to_vec(),
            expected: "a rank-3 tensor".into(),
        }),
    }
}

/// Softmax over `dim` built from differentiable primitives.
///
/// The maximum is subtracted for stability and detached: softmax does not change when a constant
/// is subtracted, so the gradient is exact. (`candle_nn::ops::softmax_last_dim` has no backward.)
pub fn softmax<Dm: candle_core::shape::Dim + Copy>(x: &Tensor, dim: Dm) -> Result<Tensor> {
    let max = x.max_keepdim(dim)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(dim)?;
    Ok(e.broadcast_div(&sum)?)
}

/// Cosine similarity between every key and every memory row: `[B, H, M] x [B, N, M] -> [B, H, N]`.
///
/// [`cosine_similarity_eps`] with [`COSINE_EPS`].
pub fn cosine_similarity(memory: &Tensor, key: &Tensor) -> Result<Tensor> {
    cosine_similarity_eps(memory, key, COSINE_EPS)
}

/// Cosine similarity with the epsilon `eps`: `k . M(i) / (|k| |M(i)| + eps)`, each norm taken
/// as `sqrt(|x|^2 + eps^2)`.
///
/// An all-zero row or key gives 0 with a finite gradient. The gradient with respect to an
/// all-zero row is about `k / (eps (|k| + 1))`: the cosine is direction-only, so its slope at the
/// origin is as steep as `eps` lets it be. A memory whose rows stay all zero until written (a
/// DNC's) wants a larger `eps` than [`COSINE_EPS`].
pub fn cosine_similarity_eps(memory: &Tensor, key: &Tensor, eps: f64) -> Result<Tensor> {
    let (b, n, m) = dims3("content", "memory", memory)?;
    let (_, h, _) = dims3("content", "key", key)?;
    check("content", "key", key, &[b, h, m])?;
    let dot = key.matmul(&memory.transpose(1, 2)?)?; // [B, H, N]
    let tiny = eps * eps;
    let key_norm = (key.sqr()?.sum_keepdim(2)? + tiny)?.sqrt()?; // [B, H, 1]
    let mem_norm = (memory.sqr()?.sum(2)? + tiny)?.sqrt()?.reshape((b, 1, n))?; // [B, 1, N]
    let denom = (key_norm.broadcast_mul(&mem_norm)? + eps)?;
    Ok(dot.broadcast_div(&denom)?)
}

/// Content addressing (eq. 5-6): a softmax over rows of `beta` times the cosine similarity.
///
/// `memory` is `[B, N, M]`, `key` is `[B, H, M]`, `beta` is `[B, H]`; returns `[B, H, N]`.
pub fn content(memory: &Tensor, key: &Tensor, beta: &Tensor) -> Result<Tensor> {
    content_eps(memory, key, beta, COSINE_EPS)
}

/// [`content`] with the cosine similarity's epsilon `eps` (see [`cosine_similarity_eps`]).
pub fn content_eps(memory: &Tensor, key: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let (_, h, _) = dims3("content", "key", key)?;
    let b = memory.dims().first().copied().unwrap_or(0);
    check("content", "beta", beta, &[b, h])?;
    let sim = cosine_similarity_eps(memory, key, eps)?;
    softmax(&sim.broadcast_mul(&beta.unsqueeze(2)?)?, 2)
}

/// Interpolation (eq. 7): `g * content + (1 - g) * previous`, with `g` of shape `[B, H]`.
pub fn interpolate(content: &Tensor, previous: &Tensor, gate: &Tensor) -> Result<Tensor> {
    let (b, h, n) = dims3("interpolate", "content", content)?;
    check("interpolate", "previous", previous, &[b, h, n])?;
    check("interpolate", "gate", gate, &[b, h])?;
    let g = gate.unsqueeze(2)?;
    // previous + g * (content - previous): one node fewer than the textbook form.
    Ok((previous + (content - previous)?.broadcast_mul(&g)?)?)
}

/// The `u32` indices that gather, for each row `i` and offset slot `k`, the row
/// `(i - (k - r)) mod N`: laid out `[N, S]` and flattened.
pub fn shift_indices(rows: usize, width: usize, device: &Device) -> Result<Tensor> {
    let r = (width / 2) as i64;
    let n = rows as i64;
    let idx: Vec<u32> = (0..n)
        .flat_map(|i| (0..width as i64).map(move |k| (i - (k - r)).rem_euclid(n) as u32))
        .collect();
    Ok(Tensor::from_vec(idx, rows * width, device)?)
}

/// Circular shift (eq. 8): `w_s(i) = sum_j w(j) s(i - j)`, indices mod `N`.
///
/// `weights` is `[B, H, N]`; `shift` is `[B, H, S]` with `S = 2r + 1` weights for the offsets
/// `-r, ..., 0, ..., +r` in that order. A one-hot `shift` at offset `o` rotates the weighting by
/// `o` rows exactly.
pub fn shift(weights: &Tensor, shift: &Tensor) -> Result<Tensor> {
    let (b, h, n) = dims3("shift", "weights", weights)?;
    let (_, _, s) = dims3("shift", "shift", shift)?;
    check("shift", "shift", shift, &[b, h, s])?;
    if s % 2 == 0 || s > n {
        return Err(AddressingError::ShiftWidth { width: s, rows: n });
    }
    let idx = shift_indices(n, s, weights.device())?;
    let gathered = weights.index_select(&idx, 2)?.reshape((b, h, n, s))?;
    Ok(gathered.broadcast_mul(&shift.unsqueeze(2)?)?.sum(3)?)
}

/// Sharpening (eq. 9): `w(i)^gamma / sum_j w(j)^gamma`, with `gamma` of shape `[B, H]`.
///
/// [`SHARPEN_EPS`] is added before the power, so `gamma = 1` returns a normalised weighting
/// unchanged up to about `N * 1e-12`. Each row is divided by its largest entry before the power,
/// as the fused kernel does: the result does not change, but the largest power is then 1, where
/// the powers of a spread-out weighting would underflow (in `f32`, `(1/128)^22` is 0, and the
/// ratio 0/0).
pub fn sharpen(weights: &Tensor, gamma: &Tensor) -> Result<Tensor> {
    let (b, h, _) = dims3("sharpen", "weights", weights)?;
    check("sharpen", "gamma", gamma, &[b, h])?;
    let lifted = (weights + SHARPEN_EPS)?;
    // The divisor is detached: the result does not depend on it, so the gradient through the
    // rest is already exact, and the backward pass need not go through the maximum.
    let top = lifted.max_keepdim(2)?.detach();
    let powered = lifted
        .broadcast_div(&top)?
        .log()?
        .broadcast_mul(&gamma.unsqueeze(2)?)?
        .exp()?;
    let sum = powered.sum_keepdim(2)?;
    Ok(powered.broadcast_div(&sum)?)
}

/// Checks that `memory`, `params` and `previous` describe one batch of heads; `(B, H, N, M, S)`.
fn validate(
    memory: &Tensor,
    params: &HeadParams,
    previous: &Tensor,
) -> Result<(usize, usize, usize, usize, usize)> {
    let stage = "address";
    let (b, n, m) = dims3(stage, "memory", memory)?;
    let (_, h, _) = dims3(stage, "previous", previous)?;
    let (_, _, s) = dims3(stage, "shift", &params.shift)?;
    check(stage, "previous", previous, &[b, h, n])?;
    check(stage, "key", &params.key, &[b, h, m])?;
    check(stage, "shift", &params.shift, &[b, h, s])?;
    for (name, t) in [
        ("beta", &params.beta),
        ("gate", &params.gate),
        ("gamma", &params.gamma),
    ] {
        check(stage, name, t, &[b, h])?;
    }
    if s % 2 == 0 || s > n {
        return Err(AddressingError::ShiftWidth { width: s, rows: n });
    }
    Ok((b, h, n, m, s))
}

/// The whole addressing pipeline for a batch of heads: content, interpolate, shift, sharpen.
///
/// `memory` is `[B, N, M]` and `previous` the heads' previous weightings `[B, H, N]`. On the CPU,
/// in `f32` or `f64`, this runs [`address_fused`], unless the kernels are switched off
/// ([`ntm_kernels::set_enabled`]); elsewhere [`address_unfused`]. Both compute the same function
/// and the same gradients.
pub fn address(memory: &Tensor, params: &HeadParams, previous: &Tensor) -> Result<Tensor> {
    if ntm_kernels::runs_on(memory) {
        address_fused(memory, params, previous)
    } else {
        address_unfused(memory, params, previous)
    }
}

/// The addressing pipeline composed of the four stage functions: the reference implementation,
/// differentiable on every device candle supports.
pub fn address_unfused(memory: &Tensor, params: &HeadParams, previous: &Tensor) -> Result<Tensor> {
    validate(memory, params, previous)?;
    let wc = content(memory, &params.key, &params.beta)?;
    let wg = interpolate(&wc, previous, &params.gate)?;
    let ws = shift(&wg, &params.shift)?;
    sharpen(&ws, &params.gamma)
}

/// The addressing pipeline as one custom op with an analytic backward (CPU, `f32` or `f64`).
///
/// About forty graph nodes of the unfused path become one, which is what makes training on the
/// CPU fast: at the paper's sizes the work per node is tiny and the per-node overhead dominates.
/// The parameters are packed into one tensor for the kernel ([`ntm_kernels::address`]); this
/// runs the kernel whether or not the kernels are switched on, and fails on other devices.
pub fn address_fused(memory: &Tensor, params: &HeadParams, previous: &Tensor) -> Result<Tensor> {
    validate(memory, params, previous)?;
    // Per head: key `M`, beta, gate, shift `S`, gamma.
    let packed = Tensor::cat(
        &[
            params.key.clone(),
            params.beta.unsqueeze(2)?,
            params.gate.unsqueeze(2)?,
            params.shift.clone(),
            params.gamma.unsqueeze(2)?,
        ],
        2,
    )?;
    Ok(ntm_kernels::address(memory, &packed, previous)?)
}

/// A batch of uniform weightings `[B, H, N]`, handy as a neutral previous weighting.
pub fn uniform(
    batch: usize,
    heads: usize,
    rows: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    Ok((Tensor::ones((batch, heads, rows), dtype, device)? / rows as f64)?)
}
