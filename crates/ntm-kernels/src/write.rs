//! The multi-head erase-and-add write as one custom op, and the per-element write kernels the
//! fused memory step shares. The kernels work on one batch element's memory column-major,
//! `[M * N]` (see the addressing kernels): every loop over the memory runs down one column.
#![allow(clippy::needless_range_loop)] // index loops mirror the equations

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use num_traits::Float;

use crate::real::{dot, dot3, transpose, zeros, Real};
use crate::storage::{slice, storage, tensor_vec};

/// Writes with `W` heads at once: every head erases, then every head adds,
/// `M' = M * prod_h (1 - w_h e_h^T) + sum_h w_h a_h^T`, as one custom op with an analytic
/// backward.
///
/// `memory` is `[B, N, M]`, `weights` `[B, W, N]`, `erase` and `add` `[B, W, M]`; returns the
/// written memory `[B, N, M]`. CPU only, `f32` or `f64`; shapes that do not fit together are an
/// error.
pub fn write(
    memory: &Tensor,
    weights: &Tensor,
    erase: &Tensor,
    add: &Tensor,
) -> candle_core::Result<Tensor> {
    let (b, n, m) = memory.dims3()?;
    let heads = weights.dim(1)?;
    for (name, t, want) in [
        ("weights", weights, [b, heads, n]),
        ("erase", erase, [b, heads, m]),
        ("add", add, [b, heads, m]),
    ] {
        if t.dims() != want {
            candle_core::bail!(
                "fused write: {name} has shape {:?}, expected {want:?}",
                t.dims()
            )
        }
    }
    let erase_add = Tensor::cat(&[erase, add], 2)?.contiguous()?;
    memory
        .contiguous()?
        .apply_op3(&weights.contiguous()?, &erase_add, FusedWrite)
}

/// Multiplies the column-major memory `mem [M*N]` by the erase factors `1 - w_i e_j` of one
/// head.
#[inline(always)]
fn apply_erase<T: Float>(mem: &mut [T], w: &[T], e: &[T]) {
    for (col, &ej) in mem.chunks_exact_mut(w.len()).zip(e) {
        for (x, &wi) in col.iter_mut().zip(w) {
            *x = *x * (T::one() - wi * ej);
        }
    }
}

/// One batch element's write, in place on the column-major `mem [M*N]` (which holds the
/// previous memory): `w [W*N]`, `ea [W*2M]` (erase then add per head).
#[inline(always)]
fn write_one<T: Float>(n: usize, m: usize, heads: usize, w: &[T], ea: &[T], mem: &mut [T]) {
    for h in 0..heads {
        apply_erase(mem, &w[h * n..(h + 1) * n], &ea[h * 2 * m..h * 2 * m + m]);
    }
    for h in 0..heads {
        let (w, add) = (&w[h * n..(h + 1) * n], &ea[h * 2 * m + m..(h + 1) * 2 * m]);
        for (col, &aj) in mem.chunks_exact_mut(n).zip(add) {
            for (x, &wi) in col.iter_mut().zip(w) {
                *x = *x + wi * aj;
            }
        }
    }
}

/// [`write_one`] that appends the written memory to `out` instead of working in place: one
/// pass over the previous memory for a single write head.
#[inline(always)]
pub(crate) fn write_append<T: Float>(
    (n, m, heads): (usize, usize, usize),
    mem: &[T],
    w: &[T],
    ea: &[T],
    out: &mut Vec<T>,
) {
    if heads == 1 {
        let (e, a) = ea.split_at(m);
        for (col, (&ej, &aj)) in mem.chunks_exact(n).zip(e.iter().zip(a)) {
            out.extend((col.iter().zip(w)).map(|(&x, &wi)| x * (T::one() - wi * ej) + wi * aj));
        }
    } else {
        let start = out.len();
        out.extend_from_slice(mem);
        write_one(n, m, heads, w, ea, &mut out[start..]);
    }
}

/// Backward of [`write_one`], in place: `g` holds the gradient of the written memory on entry
/// and that of the previous memory on return; accumulates into `g_w` and `g_ea`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn write_one_backward<T: Float>(
    n: usize,
    m: usize,
    heads: usize,
    mem: &[T],
    w: &[T],
    ea: &[T],
    g: &mut [T],
    g_w: &mut [T],
    g_ea: &mut [T],
) {
    if heads == 1 {
        return write_single_backward(m, mem, w, ea, g, g_w, g_ea);
    }
    // gm_h = g * M * prod_{h' != h} (1 - w_h' e_h'): the gradient reaching head h's factor.
    let mut gm = zeros::<T>(n * m);
    for h in 0..heads {
        for ((x, &gk), &mk) in gm.iter_mut().zip(g.iter()).zip(mem) {
            *x = gk * mk;
        }
        for other in (0..heads).filter(|&o| o != h) {
            let e = &ea[other * 2 * m..other * 2 * m + m];
            apply_erase(&mut gm, &w[other * n..(other + 1) * n], e);
        }
        let (e, a) = (
            &ea[h * 2 * m..h * 2 * m + m],
            &ea[h * 2 * m + m..(h + 1) * 2 * m],
        );
        let (wh, gwh) = (&w[h * n..(h + 1) * n], &mut g_w[h * n..(h + 1) * n]);
        let (de, da) = g_ea[h * 2 * m..(h + 1) * 2 * m].split_at_mut(m);
        let cols = gm.chunks_exact(n).zip(g.chunks_exact(n));
        for (j, (gm_col, g_col)) in cols.enumerate() {
            de[j] = de[j] - dot(gm_col, wh);
            da[j] = da[j] + dot(g_col, wh);
            for (gw, (&gv, &gmv)) in gwh.iter_mut().zip(g_col.iter().zip(gm_col)) {
                *gw = *gw + gv * a[j] - gmv * e[j];
            }
        }
    }
    // dM = g * prod_h (1 - w_h e_h)
    for h in 0..heads {
        apply_erase(g, &w[h * n..(h + 1) * n], &ea[h * 2 * m..h * 2 * m + m]);
    }
}

/// [`write_one_backward`] for one write head, in one pass over the memory:
/// `M' = M (1 - w e) + w a`, so `dM = g (1 - w e)`, `de_j = -sum_i g_ij M_ij w_i`,
/// `da_j = sum_i g_ij w_i` and `dw_i = sum_j g_ij (a_j - M_ij e_j)`.
#[inline(always)]
fn write_single_backward<T: Float>(
    m: usize,
    mem: &[T],
    w: &[T],
    ea: &[T],
    g: &mut [T],
    g_w: &mut [T],
    g_ea: &mut [T],
) {
    let n = w.len();
    let (e, a) = ea.split_at(m);
    let (de, da) = g_ea.split_at_mut(m);
    let cols = mem.chunks_exact(n).zip(g.chunks_exact_mut(n));
    for ((col, g_col), ((&ej, &aj), (dej, daj))) in
        cols.zip(e.iter().zip(a).zip(de.iter_mut().zip(da)))
    {
        *dej = *dej - dot3(g_col, col, w);
        *daj = *daj + dot(g_col, w);
        for ((gv, gw), (&x, &wi)) in g_col.iter_mut().zip(g_w.iter_mut()).zip(col.iter().zip(w)) {
            *gw = *gw + *gv * (aj - x * ej);
            *gv = *gv * (T::one() - wi * ej);
        }
    }
}

/// `(memory [B,N,M], weights [B,W,N], erase_add [B,W,2M])` to the written memory `[B,N,M]`,
/// where `erase_add` holds each head's erase vector followed by its add vector.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FusedWrite;

impl FusedWrite {
    fn forward<T: Real>(
        mem: &[T],
        w: &[T],
        ea: &[T],
        (b, heads, n, m): (usize, usize, usize, usize),
    ) -> Vec<T> {
        // The kernels work column-major; the op's tensors are row-major.
        let mem = transpose(mem, n, m);
        let mut out = Vec::with_capacity(b * n * m);
        for i in 0..b {
            write_append(
                (n, m, heads),
                &mem[i * n * m..(i + 1) * n * m],
                &w[i * heads * n..(i + 1) * heads * n],
                &ea[i * heads * 2 * m..(i + 1) * heads * 2 * m],
                &mut out,
            );
        }
        transpose(&out, m, n)
    }

    fn backward<T: Real>(
        t: [&Tensor; 4],
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, n, m) = t[0].dims3()?;
        let heads = t[1].dim(1)?;
        let (mem, w, ea) = (
            transpose(&tensor_vec::<T>(t[0])?, n, m),
            tensor_vec::<T>(t[1])?,
            tensor_vec::<T>(t[2])?,
        );
        // The gradient of the written memory becomes that of the memory in place.
        let mut g_mem = transpose(&tensor_vec::<T>(t[3])?, n, m);
        let (mut g_w, mut g_ea) = (zeros::<T>(w.len()), zeros::<T>(ea.len()));
        for i in 0..b {
            let (mr, wr, er) = (
                i * n * m..(i + 1) * n * m,
                i * heads * n..(i + 1) * heads * n,
                i * heads * 2 * m..(i + 1) * heads * 2 * m,
            );
            write_one_backward(
                n,
                m,
                heads,
                &mem[mr.clone()],
                &w[wr.clone()],
                &ea[er.clone()],
                &mut g_mem[mr],
                &mut g_w[wr],
                &mut g_ea[er],
            );
        }
        let dev = t[0].device();
        Ok((
            Some(Tensor::from_vec(transpose(&g_mem, m, n), (b, n, m), dev)?),
            Some(Tensor::from_vec(g_w, (b, heads, n), dev)?),
            Some(Tensor::from_vec(g_ea, (b, heads, 2 * m), dev)?),
        ))
    }
}

impl CustomOp3 for FusedWrite {
    fn name(&self) -> &'static str {
        "ntm-fused-write"
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
        let (b, n, m) = l1.shape().dims3()?;
        let heads = l2.shape().dims3()?.1;
        if l2.shape().dims() != [b, heads, n] || l3.shape().dims() != [b, heads, 2 * m] {
            candle_core::bail!(
                "fused write: weights {:?} and erase-add {:?} do not fit memory {:?}",
                l2.shape(),
                l3.shape(),
                l1.shape()
            )
        }
        let d = (b, heads, n, m);
        let out = match s1 {
            CpuStorage::F32(_) => storage(Self::forward::<f32>(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
                d,
            )),
            CpuStorage::F64(_) => storage(Self::forward::<f64>(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
                d,
            )),
            _ => candle_core::bail!("fused write: only f32 and f64 are supported"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        memory: &Tensor,
        weights: &Tensor,
        erase_add: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let t = [memory, weights, erase_add, grad];
        match memory.dtype() {
            DType::F32 => Self::backward::<f32>(t),
            DType::F64 => Self::backward::<f64>(t),
            dt => candle_core::bail!("fused write: unsupported dtype {dt:?}"),
        }
    }
}
