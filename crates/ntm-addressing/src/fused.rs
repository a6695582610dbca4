//! The whole addressing pipeline as one candle custom op with an analytic backward.
#![allow(clippy::needless_range_loop)] // index loops mirror the equations
//!
//! The unfused composition in the crate root builds about forty graph nodes per call, each with
//! its own allocation and pass over memory; this op does content, interpolation, shift and
//! sharpening in one pass per head, and its backward recomputes the forward intermediates and
//! applies the chain rule by hand (the derivation is in the comments of [`head_backward`]). It
//! runs on the CPU in `f32` and `f64`; [`crate::address`] falls back to the unfused path on other
//! devices.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor, WithDType};
use num_traits::Float;

use crate::{COSINE_EPS, SHARPEN_EPS};

/// Packs activated head parameters into the op's `[B, H, M + S + 3]` layout:
/// key `M`, beta, gate, shift `S`, gamma.
pub(crate) fn pack(params: &crate::HeadParams) -> candle_core::Result<Tensor> {
    Tensor::cat(
        &[
            params.key.clone(),
            params.beta.unsqueeze(2)?,
            params.gate.unsqueeze(2)?,
            params.shift.clone(),
            params.gamma.unsqueeze(2)?,
        ],
        2,
    )
}

/// The fused addressing op: `(memory [B,N,M], packed params [B,H,M+S+3], previous [B,H,N])`
/// to weightings `[B,H,N]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FusedAddress {
    pub shifts: usize,
}

/// Sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    h: usize,
    n: usize,
    m: usize,
    s: usize,
}

impl Dims {
    fn p(&self) -> usize {
        self.m + self.s + 3
    }
}

fn dims_of(memory: &Shape, params: &Shape, shifts: usize) -> candle_core::Result<Dims> {
    let (b, n, m) = memory.dims3()?;
    let (_, h, p) = params.dims3()?;
    if p != m + shifts + 3 {
        candle_core::bail!(
            "fused address: packed params have {p} entries per head, expected {}",
            m + shifts + 3
        )
    }
    Ok(Dims {
        b,
        h,
        n,
        m,
        s: shifts,
    })
}

fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused address: inputs must be contiguous"),
    }
}

/// Forward intermediates of one head, kept for the backward pass.
struct HeadCache<T> {
    key_norm: T,
    dot: Vec<T>,
    denom: Vec<T>,
    cos: Vec<T>,
    content: Vec<T>,
    gated: Vec<T>,
    shifted: Vec<T>,
    powered: Vec<T>,
    total: T,
}

fn c<T: Float + WithDType>(x: f64) -> T {
    T::from_f64(x)
}

/// Row norms `sqrt(sum_j M_ij^2 + eps^2)` of one batch element's memory.
fn row_norms<T: Float + WithDType>(mem: &[T], n: usize, m: usize) -> Vec<T> {
    let tiny = c::<T>(COSINE_EPS * COSINE_EPS);
    (0..n)
        .map(|i| {
            (mem[i * m..(i + 1) * m]
                .iter()
                .fold(T::zero(), |acc, &x| acc + x * x)
                + tiny)
                .sqrt()
        })
        .collect()
}

/// Source row of output row `i` and shift slot `k`: `(i - (k - r)) mod n`.
fn source(i: usize, k: usize, r: usize, n: usize) -> usize {
    (i + n + r - k) % n
}

/// One head's forward pass; writes the weighting into `out`.
fn head_forward<T: Float + WithDType>(
    d: Dims,
    mem: &[T],
    norms: &[T],
    par: &[T],
    prev: &[T],
    out: &mut [T],
) -> HeadCache<T> {
    let (n, m, s) = (d.n, d.m, d.s);
    let r = s / 2;
    let key = &par[..m];
    let (beta, gate) = (par[m], par[m + 1]);
    let shift = &par[m + 2..m + 2 + s];
    let gamma = par[m + 2 + s];
    let eps = c::<T>(COSINE_EPS);

    // Content: cosine similarity, then a softmax of beta * cos.
    let key_norm = (key.iter().fold(T::zero(), |a, &x| a + x * x) + eps * eps).sqrt();
    let mut dot = vec![T::zero(); n];
    let mut denom = vec![T::zero(); n];
    let mut cos = vec![T::zero(); n];
    let mut z_max = T::neg_infinity();
    for i in 0..n {
        let row = &mem[i * m..(i + 1) * m];
        dot[i] = row.iter().zip(key).fold(T::zero(), |a, (&x, &k)| a + x * k);
        denom[i] = key_norm * norms[i] + eps;
        cos[i] = dot[i] / denom[i];
        z_max = Float::max(z_max, beta * cos[i]);
    }
    let mut content: Vec<T> = cos.iter().map(|&x| (beta * x - z_max).exp()).collect();
    let sum = content.iter().fold(T::zero(), |a, &x| a + x);
    content.iter_mut().for_each(|x| *x /= sum);

    // Interpolation with the previous weighting.
    let gated: Vec<T> = content
        .iter()
        .zip(prev)
        .map(|(&wc, &wp)| wp + gate * (wc - wp))
        .collect();

    // Circular shift.
    let shifted: Vec<T> = (0..n)
        .map(|i| (0..s).fold(T::zero(), |a, k| a + gated[source(i, k, r, n)] * shift[k]))
        .collect();

    // Sharpening. Dividing by the largest entry first changes nothing after normalisation but
    // keeps the powers away from underflow; `powf` rounds better than `exp(gamma ln x)`.
    let eps2 = c::<T>(SHARPEN_EPS);
    let top = shifted.iter().fold(T::zero(), |a, &x| Float::max(a, x)) + eps2;
    let powered: Vec<T> = shifted
        .iter()
        .map(|&x| ((x + eps2) / top).powf(gamma))
        .collect();
    let total = powered.iter().fold(T::zero(), |a, &x| a + x);
    for (o, &p) in out.iter_mut().zip(&powered) {
        *o = p / total;
    }
    HeadCache {
        key_norm,
        dot,
        denom,
        cos,
        content,
        gated,
        shifted,
        powered,
        total,
    }
}

/// One head's backward pass. Accumulates into `d_mem` (shared by the heads of a batch element)
/// and writes `d_par` and `d_prev`.
#[allow(clippy::too_many_arguments)]
fn head_backward<T: Float + WithDType>(
    d: Dims,
    mem: &[T],
    norms: &[T],
    par: &[T],
    prev: &[T],
    grad: &[T],
    d_mem: &mut [T],
    d_norms: &mut [T],
    d_par: &mut [T],
    d_prev: &mut [T],
) {
    let (n, m, s) = (d.n, d.m, d.s);
    let r = s / 2;
    let mut w = vec![T::zero(); n];
    let cache = head_forward(d, mem, norms, par, prev, &mut w);
    let key = &par[..m];
    let (beta, gate) = (par[m], par[m + 1]);
    let shift = &par[m + 2..m + 2 + s];
    let gamma = par[m + 2 + s];
    let eps2 = c::<T>(SHARPEN_EPS);
    // The forward pass scales by the largest entry `top`; the scale cancels in w and in the
    // gamma gradient (sum_i dp_i p_i = 0), so it is treated as a constant here.
    let top = cache
        .shifted
        .iter()
        .fold(T::zero(), |a, &x| Float::max(a, x))
        + eps2;

    // Sharpen: w = p / P  =>  dp_i = (dw_i - sum_j dw_j w_j) / P.
    let dot_w = grad.iter().zip(&w).fold(T::zero(), |a, (&g, &x)| a + g * x);
    // p_i = ((ws_i + eps) / top)^gamma  =>  dws_i = dp_i gamma p_i / (ws_i + eps),
    // dgamma = sum_i dp_i p_i ln(ws_i + eps).
    let mut d_shifted = vec![T::zero(); n];
    let mut d_gamma = T::zero();
    for i in 0..n {
        let dp = (grad[i] - dot_w) / cache.total;
        let base = cache.shifted[i] + eps2;
        d_shifted[i] = dp * gamma * cache.powered[i] / base;
        d_gamma += dp * cache.powered[i] * (base / top).ln();
    }

    // Shift: ws_i = sum_k wg[src(i,k)] s_k.
    let mut d_gated = vec![T::zero(); n];
    let mut d_shift = vec![T::zero(); s];
    for i in 0..n {
        for k in 0..s {
            let j = source(i, k, r, n);
            d_gated[j] += d_shifted[i] * shift[k];
            d_shift[k] += d_shifted[i] * cache.gated[j];
        }
    }

    // Interpolate: wg = wp + g (wc - wp).
    let mut d_gate = T::zero();
    let mut d_content = vec![T::zero(); n];
    for i in 0..n {
        d_content[i] = gate * d_gated[i];
        d_prev[i] = (T::one() - gate) * d_gated[i];
        d_gate += d_gated[i] * (cache.content[i] - prev[i]);
    }

    // Softmax: dz_i = wc_i (dwc_i - sum_j dwc_j wc_j); z = beta cos.
    let dot_c = d_content
        .iter()
        .zip(&cache.content)
        .fold(T::zero(), |a, (&g, &x)| a + g * x);
    let mut d_beta = T::zero();
    let mut d_key_norm = T::zero();
    let d_key = &mut d_par[..m];
    d_key.iter_mut().for_each(|x| *x = T::zero());
    for i in 0..n {
        let dz = cache.content[i] * (d_content[i] - dot_c);
        d_beta += dz * cache.cos[i];
        let d_cos = beta * dz;
        // cos = dot / den, den = |k| |M_i| + eps.
        let d_dot = d_cos / cache.denom[i];
        let d_den = -d_cos * cache.dot[i] / (cache.denom[i] * cache.denom[i]);
        d_key_norm += d_den * norms[i];
        d_norms[i] += d_den * cache.key_norm;
        let row = &mem[i * m..(i + 1) * m];
        let d_row = &mut d_mem[i * m..(i + 1) * m];
        for j in 0..m {
            d_key[j] += d_dot * row[j];
            d_row[j] += d_dot * key[j];
        }
    }
    // |k| = sqrt(sum k^2 + eps^2)  =>  dk_j += d|k| k_j / |k|.
    for j in 0..m {
        d_key[j] += d_key_norm * key[j] / cache.key_norm;
    }
    d_par[m] = d_beta;
    d_par[m + 1] = d_gate;
    d_par[m + 2..m + 2 + s].copy_from_slice(&d_shift);
    d_par[m + 2 + s] = d_gamma;
}

fn forward<T: Float + WithDType>(d: Dims, mem: &[T], par: &[T], prev: &[T]) -> Vec<T> {
    let (n, m, p) = (d.n, d.m, d.p());
    let mut out = vec![T::zero(); d.b * d.h * n];
    for b in 0..d.b {
        let mem_b = &mem[b * n * m..(b + 1) * n * m];
        let norms = row_norms(mem_b, n, m);
        for h in 0..d.h {
            let bh = b * d.h + h;
            head_forward(
                d,
                mem_b,
                &norms,
                &par[bh * p..(bh + 1) * p],
                &prev[bh * n..(bh + 1) * n],
                &mut out[bh * n..(bh + 1) * n],
            );
        }
    }
    out
}

struct Grads<T> {
    mem: Vec<T>,
    par: Vec<T>,
    prev: Vec<T>,
}

fn backward<T: Float + WithDType>(
    d: Dims,
    mem: &[T],
    par: &[T],
    prev: &[T],
    grad: &[T],
) -> Grads<T> {
    let (n, m, p) = (d.n, d.m, d.p());
    let mut g = Grads {
        mem: vec![T::zero(); d.b * n * m],
        par: vec![T::zero(); d.b * d.h * p],
        prev: vec![T::zero(); d.b * d.h * n],
    };
    for b in 0..d.b {
        let mem_b = &mem[b * n * m..(b + 1) * n * m];
        let norms = row_norms(mem_b, n, m);
        let mut d_norms = vec![T::zero(); n];
        let d_mem_b = &mut g.mem[b * n * m..(b + 1) * n * m];
        for h in 0..d.h {
            let bh = b * d.h + h;
            head_backward(
                d,
                mem_b,
                &norms,
                &par[bh * p..(bh + 1) * p],
                &prev[bh * n..(bh + 1) * n],
                &grad[bh * n..(bh + 1) * n],
                d_mem_b,
                &mut d_norms,
                &mut g.par[bh * p..(bh + 1) * p],
                &mut g.prev[bh * n..(bh + 1) * n],
            );
        }
        // |M_i| = sqrt(sum_j M_ij^2 + eps^2)  =>  dM_ij += d|M_i| M_ij / |M_i|.
        for i in 0..n {
            let scale = d_norms[i] / norms[i];
            for j in 0..m {
                d_mem_b[i * m + j] += scale * mem_b[i * m + j];
            }
        }
    }
    g
}

impl CustomOp3 for FusedAddress {
    fn name(&self) -> &'static str {
        "ntm-fused-address"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = dims_of(l1.shape(), l2.shape(), self.shifts)?;
        let shape = Shape::from((d.b, d.h, d.n));
        let storage = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(forward::<f32>(
                d,
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(forward::<f64>(
                d,
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
            )),
            _ => candle_core::bail!("fused address: only f32 and f64 are supported"),
        };
        Ok((storage, shape))
    }

    fn bwd(
        &self,
        memory: &Tensor,
        params: &Tensor,
        previous: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = dims_of(memory.shape(), params.shape(), self.shifts)?;
        fn run<T: Float + WithDType>(
            d: Dims,
            t: [&Tensor; 4],
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            let v = |x: &Tensor| x.flatten_all()?.to_vec1::<T>();
            let g = backward::<T>(d, &v(t[0])?, &v(t[1])?, &v(t[2])?, &v(t[3])?);
            let dev = t[0].device();
            Ok((
                Some(Tensor::from_vec(g.mem, (d.b, d.n, d.m), dev)?),
                Some(Tensor::from_vec(g.par, (d.b, d.h, d.p()), dev)?),
                Some(Tensor::from_vec(g.prev, (d.b, d.h, d.n), dev)?),
            ))
        }
        let t = [memory, params, previous, grad];
        match memory.dtype() {
            DType::F32 => run::<f32>(d, t),
            DType::F64 => run::<f64>(d, t),
            dt => candle_core::bail!("fused address: unsupported dtype {dt:?}"),
        }
    }
}
