//! The multi-head erase-and-add write as one candle custom op with an analytic backward.
#![allow(clippy::needless_range_loop)] // index loops mirror the equations

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor, WithDType};
use num_traits::Float;

/// `(memory [B,N,M], weights [B,W,N], erase_add [B,W,2M])` to the written memory `[B,N,M]`,
/// where `erase_add` holds each head's erase vector followed by its add vector.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FusedWrite;

#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    w: usize,
    n: usize,
    m: usize,
}

fn dims_of(memory: &Shape, weights: &Shape) -> candle_core::Result<Dims> {
    let (b, n, m) = memory.dims3()?;
    let (_, w, _) = weights.dims3()?;
    Ok(Dims { b, w, n, m })
}

fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused write: inputs must be contiguous"),
    }
}

type Range = std::ops::Range<usize>;

/// Index ranges of batch element `b` in the memory `[N*M]`, weights `[W*N]` and erase-add `[W*2M]`.
fn parts(d: Dims, b: usize) -> (Range, Range, Range) {
    let (n, m) = (d.n, d.m);
    (
        b * n * m..(b + 1) * n * m,
        b * d.w * n..(b + 1) * d.w * n,
        b * d.w * 2 * m..(b + 1) * d.w * 2 * m,
    )
}

/// Multiplies `rows [N*M]` by the erase factors `1 - w_i e_j` of one head.
fn apply_erase<T: Float>(rows: &mut [T], w: &[T], e: &[T], m: usize) {
    for (row, &wi) in rows.chunks_exact_mut(m).zip(w) {
        for (x, &ej) in row.iter_mut().zip(e) {
            *x = *x * (T::one() - wi * ej);
        }
    }
}

fn forward<T: Float + WithDType>(d: Dims, mem: &[T], w: &[T], ea: &[T]) -> Vec<T> {
    let (n, m) = (d.n, d.m);
    let mut out = mem.to_vec();
    for b in 0..d.b {
        let (mr, wr, er) = parts(d, b);
        let (out, w, ea) = (&mut out[mr], &w[wr], &ea[er]);
        for h in 0..d.w {
            apply_erase(
                out,
                &w[h * n..(h + 1) * n],
                &ea[h * 2 * m..h * 2 * m + m],
                m,
            );
        }
        for h in 0..d.w {
            let add = &ea[h * 2 * m + m..(h + 1) * 2 * m];
            for (row, &wi) in out.chunks_exact_mut(m).zip(&w[h * n..(h + 1) * n]) {
                for (x, &aj) in row.iter_mut().zip(add) {
                    *x += wi * aj;
                }
            }
        }
    }
    out
}

struct Grads<T> {
    mem: Vec<T>,
    w: Vec<T>,
    ea: Vec<T>,
}

fn backward<T: Float + WithDType>(d: Dims, mem: &[T], w: &[T], ea: &[T], grad: &[T]) -> Grads<T> {
    let (n, m) = (d.n, d.m);
    let mut g = Grads {
        mem: grad.to_vec(),
        w: vec![T::zero(); w.len()],
        ea: vec![T::zero(); ea.len()],
    };
    // gm_h = grad * M * prod_{h' != h} (1 - w_h' e_h'): the gradient reaching head h's factor.
    let mut gm = vec![T::zero(); n * m];
    for b in 0..d.b {
        let (mr, wr, er) = parts(d, b);
        let (mem, grad, w, ea) = (
            &mem[mr.clone()],
            &grad[mr.clone()],
            &w[wr.clone()],
            &ea[er.clone()],
        );
        for h in 0..d.w {
            for ((x, &gk), &mk) in gm.iter_mut().zip(grad).zip(mem) {
                *x = gk * mk;
            }
            for other in (0..d.w).filter(|&o| o != h) {
                apply_erase(
                    &mut gm,
                    &w[other * n..(other + 1) * n],
                    &ea[other * 2 * m..other * 2 * m + m],
                    m,
                );
            }
            let (e, a) = (
                &ea[h * 2 * m..h * 2 * m + m],
                &ea[h * 2 * m + m..(h + 1) * 2 * m],
            );
            let (dw, dea) = (
                &mut g.w[wr.start + h * n..wr.start + (h + 1) * n],
                &mut g.ea[er.start + h * 2 * m..er.start + (h + 1) * 2 * m],
            );
            let (de, da) = dea.split_at_mut(m);
            for i in 0..n {
                let wi = w[h * n + i];
                let (gm_row, g_row) = (&gm[i * m..(i + 1) * m], &grad[i * m..(i + 1) * m]);
                let mut acc = T::zero();
                for j in 0..m {
                    acc = acc + g_row[j] * a[j] - gm_row[j] * e[j];
                    de[j] -= gm_row[j] * wi;
                    da[j] += g_row[j] * wi;
                }
                dw[i] = acc;
            }
        }
        // dM = grad * prod_h (1 - w_h e_h)
        for h in 0..d.w {
            apply_erase(
                &mut g.mem[mr.clone()],
                &w[h * n..(h + 1) * n],
                &ea[h * 2 * m..h * 2 * m + m],
                m,
            );
        }
    }
    g
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
        let d = dims_of(l1.shape(), l2.shape())?;
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
            _ => candle_core::bail!("fused write: only f32 and f64 are supported"),
        };
        Ok((storage, l1.shape().clone()))
    }

    fn bwd(
        &self,
        memory: &Tensor,
        weights: &Tensor,
        erase_add: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = dims_of(memory.shape(), weights.shape())?;
        fn run<T: Float + WithDType>(
            d: Dims,
            t: [&Tensor; 4],
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            let v = |x: &Tensor| x.flatten_all()?.to_vec1::<T>();
            let g = backward::<T>(d, &v(t[0])?, &v(t[1])?, &v(t[2])?, &v(t[3])?);
            let dev = t[0].device();
            Ok((
                Some(Tensor::from_vec(g.mem, (d.b, d.n, d.m), dev)?),
                Some(Tensor::from_vec(g.w, (d.b, d.w, d.n), dev)?),
                Some(Tensor::from_vec(g.ea, (d.b, d.w, 2 * d.m), dev)?),
            ))
        }
        let t = [memory, weights, erase_add, grad];
        match memory.dtype() {
            candle_core::DType::F32 => run::<f32>(d, t),
            candle_core::DType::F64 => run::<f64>(d, t),
            dt => candle_core::bail!("fused write: unsupported dtype {dt:?}"),
        }
    }
}
