//! One optimiser update of a variable in one pass: RMSProp (Graves 2013) and Adam.
//!
//! Composed of candle operations an update is a dozen graph-free tensor operations per variable,
//! each a pass over the variable and a fresh allocation; at batch 1, where every sequence ends in
//! an update, they took a quarter of the LSTM baseline's training time. These functions do the
//! same arithmetic in one pass: every operation in candle's order and with candle's rounding
//! (a scalar multiplication is candle's `affine`, `x * mul + add`, with the scalar rounded to
//! the element type first), so that the result is the composition's to the last bit.

use candle_core::{DType, Tensor, WithDType};
use multiversion::multiversion;
use num_traits::Float;

use crate::real::zeros;
use crate::storage::cpu_slice;

/// RMSProp's hyperparameters, as in Graves (2013), eq. 38-41.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rmsprop {
    /// The learning rate of this update.
    pub lr: f64,
    /// Decay of the running averages.
    pub alpha: f64,
    /// Momentum.
    pub momentum: f64,
    /// Added under the square root.
    pub eps: f64,
}

/// Adam's hyperparameters, with the bias correction of update `t` (counted from 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    /// The learning rate of this update.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// The update's number, from 1.
    pub t: i32,
}

/// candle's `affine`: `x * mul + add`.
#[inline(always)]
fn affine<T: Float>(x: T, mul: T, add: T) -> T {
    x * mul + add
}

/// `x` as the element type, as candle rounds a scalar operand.
#[inline(always)]
fn scalar<T: WithDType>(x: f64) -> T {
    <T as WithDType>::from_f64(x)
}

/// The element slices of `tensors` (each made contiguous), checked to share one shape.
fn elements<T: WithDType>(
    what: &str,
    tensors: &[&Tensor],
    f: impl FnOnce(&[&[T]]) -> Vec<Vec<T>>,
) -> candle_core::Result<Vec<Tensor>> {
    let first = tensors[0];
    let contiguous = tensors
        .iter()
        .map(|t| {
            if t.shape() != first.shape() || t.dtype() != first.dtype() {
                candle_core::bail!(
                    "{what}: {:?} {:?} does not match the variable's {:?} {:?}",
                    t.dims(),
                    t.dtype(),
                    first.dims(),
                    first.dtype()
                )
            }
            t.contiguous()
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let guards: Vec<_> = contiguous.iter().map(|t| t.storage_and_layout()).collect();
    let slices = guards
        .iter()
        .map(|(s, l)| cpu_slice::<T>(s, l))
        .collect::<candle_core::Result<Vec<_>>>()?;
    f(&slices)
        .into_iter()
        .map(|v| Tensor::from_vec(v, first.shape(), first.device()))
        .collect()
}

/// One RMSProp update of the variable `w` with gradient `g` and moments `[n, gbar, delta]`:
/// returns the new value and the new moments,
/// `n = a n + (1-a) g^2; gbar = a gbar + (1-a) g; delta = m delta - lr g / sqrt(n - gbar^2 + eps);
/// w + delta`, equal to the last bit to the same composition of candle operations.
///
/// CPU only, `f32` or `f64`, every tensor of the variable's shape and dtype; otherwise an
/// error.
pub fn rmsprop(
    w: &Tensor,
    g: &Tensor,
    state: [&Tensor; 3],
    hp: Rmsprop,
) -> candle_core::Result<(Tensor, [Tensor; 3])> {
    let tensors = [w, g, state[0], state[1], state[2]];
    let out = match w.dtype() {
        DType::F32 => elements::<f32>("rmsprop", &tensors, |s| rmsprop_slices(s, hp))?,
        DType::F64 => elements::<f64>("rmsprop", &tensors, |s| rmsprop_slices(s, hp))?,
        dt => candle_core::bail!("rmsprop: {dt:?}, not f32 or f64"),
    };
    let [w, n, gbar, delta]: [Tensor; 4] = out
        .try_into()
        .map_err(|_| candle_core::Error::Msg("rmsprop: four outputs".into()))?;
    Ok((w, [n, gbar, delta]))
}

#[multiversion(targets("x86_64+avx2+fma"))]
fn rmsprop_slices<T: Float + WithDType>(s: &[&[T]], hp: Rmsprop) -> Vec<Vec<T>> {
    let len = s[0].len();
    let (w, g, n0, gbar0, delta0) = (
        &s[0][..len],
        &s[1][..len],
        &s[2][..len],
        &s[3][..len],
        &s[4][..len],
    );
    let (zero, one) = (T::zero(), T::one());
    let (alpha, rest) = (scalar::<T>(hp.alpha), scalar::<T>(1.0 - hp.alpha));
    let (eps, lr, momentum) = (
        scalar::<T>(hp.eps),
        scalar::<T>(hp.lr),
        scalar::<T>(hp.momentum),
    );
    let mut out = vec![zeros::<T>(len), zeros(len), zeros(len), zeros(len)];
    let [w1, n1, gbar1, delta1] = &mut out[..] else {
        unreachable!("four outputs")
    };
    let (w1, n1, gbar1, delta1) = (
        &mut w1[..len],
        &mut n1[..len],
        &mut gbar1[..len],
        &mut delta1[..len],
    );
    // Indexed over slices cut to one length, so that the loop vectorises.
    for i in 0..len {
        let gi = g[i];
        let n = affine(n0[i], alpha, zero) + affine(gi * gi, rest, zero);
        let gbar = affine(gbar0[i], alpha, zero) + affine(gi, rest, zero);
        let denom = affine(n - gbar * gbar, one, eps).sqrt();
        let delta = affine(delta0[i], momentum, zero) - affine(gi / denom, lr, zero);
        w1[i] = w[i] + delta;
        n1[i] = n;
        gbar1[i] = gbar;
        delta1[i] = delta;
    }
    out
}

/// One Adam update of the variable `w` with gradient `g` and moments `[m, v]`: returns the new
/// value and the new moments, `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
/// w - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`, equal to the last bit to the same
/// composition of candle operations.
///
/// CPU only, `f32` or `f64`, every tensor of the variable's shape and dtype; otherwise an
/// error.
pub fn adam(
    w: &Tensor,
    g: &Tensor,
    state: [&Tensor; 2],
    hp: Adam,
) -> candle_core::Result<(Tensor, [Tensor; 2])> {
    let tensors = [w, g, state[0], state[1]];
    let out = match w.dtype() {
        DType::F32 => elements::<f32>("adam", &tensors, |s| adam_slices(s, hp))?,
        DType::F64 => elements::<f64>("adam", &tensors, |s| adam_slices(s, hp))?,
        dt => candle_core::bail!("adam: {dt:?}, not f32 or f64"),
    };
    let [w, m, v]: [Tensor; 3] = out
        .try_into()
        .map_err(|_| candle_core::Error::Msg("adam: three outputs".into()))?;
    Ok((w, [m, v]))
}

#[multiversion(targets("x86_64+avx2+fma"))]
fn adam_slices<T: Float + WithDType>(s: &[&[T]], hp: Adam) -> Vec<Vec<T>> {
    let len = s[0].len();
    let (w, g, m0, v0) = (&s[0][..len], &s[1][..len], &s[2][..len], &s[3][..len]);
    let (zero, one) = (T::zero(), T::one());
    let (beta1, rest1) = (scalar::<T>(hp.beta1), scalar::<T>(1.0 - hp.beta1));
    let (beta2, rest2) = (scalar::<T>(hp.beta2), scalar::<T>(1.0 - hp.beta2));
    let correct1 = scalar::<T>(1.0 / (1.0 - hp.beta1.powi(hp.t)));
    let correct2 = scalar::<T>(1.0 / (1.0 - hp.beta2.powi(hp.t)));
    let (eps, lr) = (scalar::<T>(hp.eps), scalar::<T>(hp.lr));
    let mut out = vec![zeros::<T>(len), zeros(len), zeros(len)];
    let [w1, m1, v1] = &mut out[..] else {
        unreachable!("three outputs")
    };
    let (w1, m1, v1) = (&mut w1[..len], &mut m1[..len], &mut v1[..len]);
    for i in 0..len {
        let gi = g[i];
        let m = affine(m0[i], beta1, zero) + affine(gi, rest1, zero);
        let v = affine(v0[i], beta2, zero) + affine(gi * gi, rest2, zero);
        let m_hat = affine(m, correct1, zero);
        let v_hat = affine(v, correct2, zero);
        let update = m_hat / affine(v_hat.sqrt(), one, eps);
        w1[i] = w[i] - affine(update, lr, zero);
        m1[i] = m;
        v1[i] = v;
    }
    out
}
