//! The whole addressing pipeline (content, interpolation, shift, sharpening) as one candle
//! custom op with an analytic backward.
//!
//! The composition of candle operations builds about forty graph nodes per call, each with its
//! own allocation and pass over memory; this op does content, interpolation, shift and
//! sharpening in one pass per head, and its backward recomputes the forward intermediates and
//! applies the chain rule by hand (the derivation is in the comments of [`head_backward`]).
//!
//! The per-head kernels ([`head_forward`], [`head_backward`], [`row_norms`]) work on plain
//! slices and are shared with the fused memory step. They take one batch element's memory
//! *column-major*, `[M * N]`, each column (the `j`-th entry of every row) contiguous: with the
//! paper's 20-wide rows and 128 rows, every loop over the memory then runs over 128 contiguous
//! numbers instead of 20. The op transposes its row-major input once on the way in and the
//! gradient once on the way out.
#![allow(clippy::needless_range_loop)] // index loops mirror the equations

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use multiversion::multiversion;
use num_traits::Float;

use crate::real::{c, dot, max_scaled, sum, transpose, zeros, Real};
use crate::storage::slice;
use crate::{COSINE_EPS, SHARPEN_EPS};

/// Fused addressing of a batch of heads over a packed parameter tensor.
///
/// `memory` is `[B, N, M]`, `packed` the heads' activated parameters `[B, H, M + S + 3]` (per
/// head: key `M`, beta, gate, shift weighting over `S = 2r + 1` offsets `-r..=r`, gamma) and
/// `previous` the heads' previous weightings `[B, H, N]`; returns the new weightings
/// `[B, H, N]`, with a backward to all three inputs. CPU only, `f32` or `f64`; shapes that do
/// not fit together are an error.
pub fn address(memory: &Tensor, packed: &Tensor, previous: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, m) = memory.dims3()?;
    let (_, _, p) = packed.dims3()?;
    if p < m + 4 {
        candle_core::bail!(
            "fused address: packed params have {p} entries per head, need at least {}",
            m + 4
        )
    }
    let op = FusedAddress { shifts: p - m - 3 };
    dims_of(memory.shape(), packed.shape(), previous.shape(), op.shifts)?;
    memory
        .contiguous()?
        .apply_op3(&packed.contiguous()?, &previous.contiguous()?, op)
}

/// The fused addressing op: `(memory [B,N,M], packed params [B,H,M+S+3], previous [B,H,N])`
/// to weightings `[B,H,N]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FusedAddress {
    pub shifts: usize,
}

/// Sizes of one call: batch, heads, memory rows and width, shift offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    /// Batch size.
    pub b: usize,
    /// Heads.
    pub h: usize,
    /// Memory rows `N`.
    pub n: usize,
    /// Memory width `M`.
    pub m: usize,
    /// Shift offsets `S = 2r + 1`.
    pub s: usize,
}

impl Dims {
    /// Packed parameters per head: key `M`, beta, gate, shift `S`, gamma.
    pub fn p(&self) -> usize {
        self.m + self.s + 3
    }
}

/// The sizes of a call, checked: memory `[B, N, M]` with `N, M >= 1`, packed parameters
/// `[B, H, M + S + 3]` with an odd `S <= N`, previous weightings `[B, H, N]`.
fn dims_of(
    memory: &Shape,
    params: &Shape,
    previous: &Shape,
    shifts: usize,
) -> candle_core::Result<Dims> {
    let (b, n, m) = memory.dims3()?;
    let (pb, h, p) = params.dims3()?;
    if n == 0 || m == 0 {
        candle_core::bail!("fused address: memory [{b}, {n}, {m}] has no rows or no columns")
    }
    if pb != b || p != m + shifts + 3 {
        candle_core::bail!(
            "fused address: packed params {params:?} do not fit memory {memory:?} with {shifts} shifts"
        )
    }
    if shifts.is_multiple_of(2) || shifts > n {
        candle_core::bail!("fused address: {shifts} shift offsets do not fit {n} rows")
    }
    if previous.dims() != [b, h, n] {
        candle_core::bail!(
            "fused address: previous weightings {previous:?}, expected [{b}, {h}, {n}]"
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

/// Forward intermediates of one head, kept for [`head_backward`].
#[derive(Debug, Clone)]
pub(crate) struct HeadCache<T> {
    key_norm: T,
    total: T,
    /// Seven vectors of `N`, one after another, so that the backward pass, which comes to them
    /// long after the forward left them, reads one stream: see [`Part`].
    data: Vec<T>,
}

/// The vectors of a [`HeadCache`], in their order in its buffer.
#[derive(Clone, Copy)]
enum Part {
    /// `|k| |M_i| + eps`, the cosine's denominators.
    Denom,
    Cos,
    Content,
    Gated,
    Shifted,
    /// `ln((shifted + eps) / top)`, the logarithms the sharpening raised to gamma.
    Logs,
    Powered,
}

impl<T> HeadCache<T> {
    fn get(&self, part: Part) -> &[T] {
        let n = self.data.len() / 7;
        let k = part as usize;
        &self.data[k * n..(k + 1) * n]
    }
}

/// Row norms `sqrt(sum_j M_ij^2 + eps^2)` of one batch element's column-major memory
/// `[M * N]`.
#[inline(always)]
pub(crate) fn row_norms<T: Real>(mem: &[T], n: usize, m: usize) -> Vec<T> {
    let tiny = c::<T>(COSINE_EPS * COSINE_EPS);
    let mut sq = zeros::<T>(n);
    for col in mem.chunks_exact(n).take(m) {
        for (s, &x) in sq.iter_mut().zip(col) {
            *s += x * x;
        }
    }
    sq.iter_mut().for_each(|s| *s = (*s + tiny).sqrt());
    sq
}

/// Rotation of shift slot `k` (offset `k - r`), as a non-negative amount below `n`.
#[inline(always)]
fn rotation(k: usize, r: usize, n: usize) -> usize {
    (k + n - r % n) % n
}

/// `out[i] += scale * src[(i - t) mod n]`, as two contiguous runs.
#[inline(always)]
fn add_rotated<T: Float>(out: &mut [T], src: &[T], t: usize, scale: T) {
    let n = src.len();
    let (head, tail) = out.split_at_mut(t);
    for (o, &x) in tail.iter_mut().zip(&src[..n - t]) {
        *o = *o + scale * x;
    }
    for (o, &x) in head.iter_mut().zip(&src[n - t..]) {
        *o = *o + scale * x;
    }
}

/// `sum_i a[i] b[(i - t) mod n]`.
#[inline(always)]
fn dot_rotated<T: Float>(a: &[T], b: &[T], t: usize) -> T {
    let n = b.len();
    dot(&a[t..], &b[..n - t]) + dot(&a[..t], &b[n - t..])
}

/// One head's forward pass; writes the weighting into `out` and returns what
/// [`head_backward`] needs.
///
/// `mem` is one batch element's column-major memory `[M * N]` with its [`row_norms`], `par` the head's
/// packed activated parameters `[M + S + 3]`, `prev` its previous weighting `[N]`.
#[inline(always)]
pub(crate) fn head_forward<T: Real>(
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

    let mut data = zeros::<T>(7 * n);
    let (denom, rest) = data.split_at_mut(n);
    let (cos, rest) = rest.split_at_mut(n);
    let (content, rest) = rest.split_at_mut(n);
    let (gated, rest) = rest.split_at_mut(n);
    let (shifted, rest) = rest.split_at_mut(n);
    let (logs, powered) = rest.split_at_mut(n);

    // Content: cosine similarity, then a softmax of beta * cos.
    let key_norm = (dot(key, key) + eps * eps).sqrt();
    for (den, &x) in denom.iter_mut().zip(norms) {
        *den = key_norm * x + eps;
    }
    for (col, &kj) in mem.chunks_exact(n).zip(key) {
        for (c, &x) in cos.iter_mut().zip(col) {
            *c += kj * x;
        }
    }
    for (c, &den) in cos.iter_mut().zip(denom.iter()) {
        *c /= den;
    }
    let z_max = max_scaled(cos, beta);
    for (wc, &x) in content.iter_mut().zip(cos.iter()) {
        *wc = (beta * x - z_max).exp_fast();
    }
    let total = sum(content);
    content.iter_mut().for_each(|x| *x /= total);

    // Interpolation with the previous weighting.
    for (wg, (&wc, &wp)) in gated.iter_mut().zip(content.iter().zip(prev)) {
        *wg = wp + gate * (wc - wp);
    }

    // Circular shift.
    for (k, &sk) in shift.iter().enumerate() {
        add_rotated(shifted, gated, rotation(k, r, n), sk);
    }

    // Sharpening. Dividing by the largest entry first changes nothing after normalisation but
    // keeps the powers away from underflow.
    let eps2 = c::<T>(SHARPEN_EPS);
    let top = Float::max(max_scaled(shifted, T::one()), T::zero()) + eps2;
    for (l, &x) in logs.iter_mut().zip(shifted.iter()) {
        *l = ((x + eps2) / top).ln_fast();
    }
    for (p, &l) in powered.iter_mut().zip(logs.iter()) {
        *p = (l * gamma).exp_fast();
    }
    let total = sum(powered);
    for (o, &p) in out.iter_mut().zip(powered.iter()) {
        *o = p / total;
    }
    HeadCache {
        key_norm,
        total,
        data,
    }
}

/// One head's backward pass, given the gradient `grad` of its weighting and the `cache` its
/// [`head_forward`] returned. Accumulates into `d_mem` (shared by the heads that address the
/// same memory), including the part that flows through the row norms, and writes `d_par` and
/// `d_prev`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn head_backward<T: Real>(
    d: Dims,
    mem: &[T],
    norms: &[T],
    par: &[T],
    prev: &[T],
    cache: &HeadCache<T>,
    grad: &[T],
    d_mem: &mut [T],
    d_par: &mut [T],
    d_prev: &mut [T],
) {
    let (n, m, s) = (d.n, d.m, d.s);
    let r = s / 2;
    let key = &par[..m];
    let (beta, gate) = (par[m], par[m + 1]);
    let shift = &par[m + 2..m + 2 + s];
    let gamma = par[m + 2 + s];
    let eps2 = c::<T>(SHARPEN_EPS);
    // The forward pass scales by the largest entry `top`; the scale cancels in w and in the
    // gamma gradient (sum_i dp_i p_i = 0), so it is treated as a constant here.

    // Sharpen: w = p / P  =>  dp_i = (dw_i - sum_j dw_j w_j) / P.
    let inv_total = T::one() / cache.total;
    let dot_w = dot(grad, cache.get(Part::Powered)) * inv_total;
    // p_i = ((ws_i + eps) / top)^gamma  =>  dws_i = dp_i gamma p_i / (ws_i + eps),
    // dgamma = sum_i dp_i p_i ln((ws_i + eps) / top).
    let dp_p: Vec<T> = grad
        .iter()
        .zip(cache.get(Part::Powered))
        .map(|(&g, &p)| (g - dot_w) * inv_total * p)
        .collect();
    let d_gamma = dot(&dp_p, cache.get(Part::Logs));
    let d_shifted: Vec<T> = dp_p
        .iter()
        .zip(cache.get(Part::Shifted))
        .map(|(&x, &ws)| x * gamma / (ws + eps2))
        .collect();

    // Shift: ws_i = sum_k wg[(i - t_k) mod n] s_k, t_k = (k - r) mod n.
    let mut d_gated = zeros::<T>(n);
    let mut d_shift = zeros::<T>(s);
    // The gradient of a rotation by t is the rotation by n - t.
    for (k, &sk) in shift.iter().enumerate() {
        let t = rotation(k, r, n);
        d_shift[k] = dot_rotated(&d_shifted, cache.get(Part::Gated), t);
        add_rotated(&mut d_gated, &d_shifted, (n - t) % n, sk);
    }

    // Interpolate: wg = wp + g (wc - wp).
    let d_gate = dot(&d_gated, cache.get(Part::Content)) - dot(&d_gated, prev);
    let d_content: Vec<T> = d_gated.iter().map(|&x| gate * x).collect();
    for (dp, &x) in d_prev.iter_mut().zip(&d_gated) {
        *dp = (T::one() - gate) * x;
    }

    // Softmax: dz_i = wc_i (dwc_i - sum_j dwc_j wc_j); z = beta cos.
    let dot_c = dot(&d_content, cache.get(Part::Content));
    let dz: Vec<T> = d_content
        .iter()
        .zip(cache.get(Part::Content))
        .map(|(&g, &x)| x * (g - dot_c))
        .collect();
    let d_beta = dot(&dz, cache.get(Part::Cos));
    // cos = dot / den, den = |k| |M_i| + eps.
    let d_dot: Vec<T> = dz
        .iter()
        .zip(cache.get(Part::Denom))
        .map(|(&z, &den)| beta * z / den)
        .collect();
    let d_den: Vec<T> = d_dot
        .iter()
        .zip(cache.get(Part::Cos))
        .map(|(&dd, &cos)| -dd * cos)
        .collect();
    let d_key_norm = dot(&d_den, norms);
    // |M_i| = sqrt(sum_j M_ij^2 + eps^2)  =>  dM_ij += d|M_i| M_ij / |M_i|, with
    // d|M_i| = d_den_i |k|; folded into the same pass over the rows as the dot's gradient.
    let by_norm: Vec<T> = (d_den.iter().zip(norms))
        .map(|(&dn, &norm)| dn * cache.key_norm / norm)
        .collect();
    let d_key = &mut d_par[..m];
    let cols = mem.chunks_exact(n).zip(d_mem.chunks_exact_mut(n));
    for ((col, d_col), (dk, &kj)) in cols.zip(d_key.iter_mut().zip(key)) {
        *dk = dot(&d_dot, col);
        for ((dc, &x), (&dd, &bn)) in d_col.iter_mut().zip(col).zip(d_dot.iter().zip(&by_norm)) {
            *dc += dd * kj + bn * x;
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

#[multiversion(targets("x86_64+avx2+fma"))]
fn forward<T: Real>(d: Dims, mem: &[T], par: &[T], prev: &[T]) -> Vec<T> {
    let (n, m, p) = (d.n, d.m, d.p());
    let mem = transpose(mem, n, m);
    let mut out = zeros::<T>(d.b * d.h * n);
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

#[multiversion(targets("x86_64+avx2+fma"))]
fn backward<T: Real>(d: Dims, mem: &[T], par: &[T], prev: &[T], grad: &[T]) -> Grads<T> {
    let (n, m, p) = (d.n, d.m, d.p());
    let mem = transpose(mem, n, m);
    let mut g = Grads {
        mem: zeros::<T>(d.b * n * m),
        par: zeros::<T>(d.b * d.h * p),
        prev: zeros::<T>(d.b * d.h * n),
    };
    for b in 0..d.b {
        let mem_b = &mem[b * n * m..(b + 1) * n * m];
        let norms = row_norms(mem_b, n, m);
        let d_mem_b = &mut g.mem[b * n * m..(b + 1) * n * m];
        for h in 0..d.h {
            let bh = b * d.h + h;
            let (par, prev) = (&par[bh * p..(bh + 1) * p], &prev[bh * n..(bh + 1) * n]);
            let mut w = zeros::<T>(n);
            let cache = head_forward(d, mem_b, &norms, par, prev, &mut w);
            head_backward(
                d,
                mem_b,
                &norms,
                par,
                prev,
                &cache,
                &grad[bh * n..(bh + 1) * n],
                d_mem_b,
                &mut g.par[bh * p..(bh + 1) * p],
                &mut g.prev[bh * n..(bh + 1) * n],
            );
        }
    }
    g.mem = transpose(&g.mem, m, n);
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
        let d = dims_of(l1.shape(), l2.shape(), l3.shape(), self.shifts)?;
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
        let d = dims_of(
            memory.shape(),
            params.shape(),
            previous.shape(),
            self.shifts,
        )?;
        fn run<T: Real>(
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
