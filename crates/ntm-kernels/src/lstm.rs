//! The LSTM cell update as one candle custom op with an analytic backward.
//!
//! Composed of candle operations, the update from gate pre-activations to the new hidden and
//! cell state is about a dozen graph nodes (a sigmoid over all gates, four narrows, two tanh,
//! three products and a sum), each with its own allocation and, in the backward pass, its own
//! zero-filled gradient buffer. This op does it in one pass and one node, keeps the activations
//! for its backward pass, and computes them with exponentials the compiler can vectorise
//! (libm's `tanhf` alone took a tenth of a training step at batch 32).

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use multiversion::multiversion;

use crate::real::{sigmoid, Real};
use crate::storage::elements;

/// One LSTM cell update as one custom op: gate pre-activations `z` `[B, 4n]`, ordered input,
/// forget, cell, output, and the previous cell state `c` `[B, n]`, to the new hidden state `h`
/// and cell state `c'`, each `[B, n]`:
/// `c' = sigmoid(z_f) c + sigmoid(z_i) tanh(z_g)`, `h = sigmoid(z_o) tanh(c')`.
///
/// Both inputs may be strided views (the cell state is usually a narrow of the previous
/// step's output). CPU only, `f32` or `f64`; shapes that do not fit together are an error.
pub fn lstm_cell(z: &Tensor, c: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let n = size_of(z.shape(), c.shape())?;
    let out = z.apply_op2(c, LstmCell)?;
    Ok((out.narrow(1, 0, n)?, out.narrow(1, n, n)?))
}

/// Gate pre-activations `z` `[B, 4n]` (input, forget, cell, output) and the previous cell state
/// `c` `[B, n]` to `[B, 7n]`: the new hidden state, the new cell state, and the activations
/// the backward pass reads (see [`forward`]).
#[derive(Debug, Clone, Copy)]
struct LstmCell;

/// `tanh x = 2 sigmoid(2x) - 1`: one exponential, and exact to rounding of the result's scale.
#[inline(always)]
fn tanh<T: Real>(x: T) -> T {
    let two = T::one() + T::one();
    two * sigmoid(two * x) - T::one()
}

/// Output row per batch element: `h`, `c'`, then the activations the backward pass reads:
/// `i`, `f`, `g`, `o`, `tanh c'`.
const PARTS: usize = 7;

#[multiversion(targets("x86_64+avx2+fma"))]
fn forward<T: Real>(n: usize, z: &[T], c: &[T]) -> Vec<T> {
    let batch = c.len() / n;
    let mut out = vec![T::zero(); PARTS * batch * n];
    for (b, row) in out.chunks_exact_mut(PARTS * n).enumerate() {
        let (zb, cb) = (&z[4 * n * b..4 * n * (b + 1)], &c[n * b..n * (b + 1)]);
        let (hc, act) = row.split_at_mut(2 * n);
        let (gates, tc) = act.split_at_mut(4 * n);
        // Gate activations, each a branch-free loop the compiler can vectorise: sigmoids for
        // the input, forget and output gates, tanh for the cell gate.
        for (k, (a, x)) in gates
            .chunks_exact_mut(n)
            .zip(zb.chunks_exact(n))
            .enumerate()
        {
            let pairs = a.iter_mut().zip(x);
            if k == 2 {
                pairs.for_each(|(a, &x)| *a = tanh(x));
            } else {
                pairs.for_each(|(a, &x)| *a = sigmoid(x));
            }
        }
        let (h, c_next) = hc.split_at_mut(n);
        for j in 0..n {
            c_next[j] = gates[n + j] * cb[j] + gates[j] * gates[2 * n + j];
            tc[j] = tanh(c_next[j]);
            h[j] = gates[3 * n + j] * tc[j];
        }
    }
    out
}

/// `c' = f c + i g`, `h = o tanh(c')`, with `i, f, o` sigmoids and `g` a tanh of their
/// pre-activations. Given `dh` and `dc'`: `dc'_total = dc' + dh o (1 - tanh^2 c')`, then
/// `dz_o = dh tanh(c') o (1 - o)`, `dz_i = dc'_total g i (1 - i)`,
/// `dz_g = dc'_total i (1 - g^2)`, `dz_f = dc'_total c f (1 - f)` and `dc = dc'_total f`.
/// Reads the activations from the forward output `res`; gradients reaching the activation
/// columns of the output are ignored (nothing downstream reads them).
#[multiversion(targets("x86_64+avx2+fma"))]
fn backward<T: Real>(n: usize, c: &[T], res: &[T], grad: &[T]) -> (Vec<T>, Vec<T>) {
    let batch = c.len() / n;
    let (mut dz, mut dc) = (vec![T::zero(); 4 * n * batch], vec![T::zero(); n * batch]);
    let one = T::one();
    for b in 0..batch {
        let row = &res[PARTS * n * b..PARTS * n * (b + 1)];
        let (i, f, g) = (&row[2 * n..3 * n], &row[3 * n..4 * n], &row[4 * n..5 * n]);
        let (o, tc) = (&row[5 * n..6 * n], &row[6 * n..7 * n]);
        let gb = &grad[PARTS * n * b..PARTS * n * (b + 1)];
        let (dh, dc_next) = (&gb[..n], &gb[n..2 * n]);
        let cb = &c[n * b..n * (b + 1)];
        let (dzb, dcb) = (
            &mut dz[4 * n * b..4 * n * (b + 1)],
            &mut dc[n * b..n * (b + 1)],
        );
        for j in 0..n {
            let dct = dc_next[j] + dh[j] * o[j] * (one - tc[j] * tc[j]);
            dzb[j] = dct * g[j] * i[j] * (one - i[j]);
            dzb[n + j] = dct * cb[j] * f[j] * (one - f[j]);
            dzb[2 * n + j] = dct * i[j] * (one - g[j] * g[j]);
            dzb[3 * n + j] = dh[j] * tc[j] * o[j] * (one - o[j]);
            dcb[j] = dct * f[j];
        }
    }
    (dz, dc)
}

fn size_of(z: &Shape, c: &Shape) -> candle_core::Result<usize> {
    let (batch, n) = c.dims2()?;
    if n == 0 || z.dims2()? != (batch, 4 * n) {
        candle_core::bail!("lstm cell: gates {z:?} do not match cell state {c:?}")
    }
    Ok(n)
}

impl CustomOp2 for LstmCell {
    fn name(&self) -> &'static str {
        "ntm-lstm-cell"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = size_of(l1.shape(), l2.shape())?;
        let shape = Shape::from((l2.dims()[0], PARTS * n));
        let out = match s1 {
            CpuStorage::F32(_) => {
                CpuStorage::F32(forward::<f32>(n, &elements(s1, l1)?, &elements(s2, l2)?))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(forward::<f64>(n, &elements(s1, l1)?, &elements(s2, l2)?))
            }
            _ => candle_core::bail!("lstm cell: only f32 and f64 are supported"),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        z: &Tensor,
        c: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let n = size_of(z.shape(), c.shape())?;
        let t = [z, c, res, grad];
        fn run<T: Real>(
            n: usize,
            [z, c, res, grad]: [&Tensor; 4],
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
            let v = |x: &Tensor| x.flatten_all()?.to_vec1::<T>();
            let (dz, dc) = backward(n, &v(c)?, &v(res)?, &v(grad)?);
            Ok((
                Some(Tensor::from_vec(dz, z.shape(), z.device())?),
                Some(Tensor::from_vec(dc, c.shape(), c.device())?),
            ))
        }
        match z.dtype() {
            DType::F32 => run::<f32>(n, t),
            DType::F64 => run::<f64>(n, t),
            dt => candle_core::bail!("lstm cell: unsupported dtype {dt:?}"),
        }
    }
}
