//! Finite-difference gradient checks for code built on candle's autograd.
//!
//! Used by this workspace's tests (addressing stages, memory writes, whole models) and useful to
//! anyone writing a custom op or memory. Work in `f64`, with a step of about `1e-6`.
//!
//! Each probed element is scored with a relative error ([`relative_error`]): the disagreement
//! between the autograd gradient `a` and the central difference `n`, less what the central
//! difference itself cannot resolve, over the larger of `|a|`, `|n|` and [`GRADIENT_FLOOR`]:
//!
//! ```text
//! error = max(|a - n| - noise, 0) / max(|a|, |n|, GRADIENT_FLOOR)
//! noise = LOSS_ULPS * EPSILON * max(|f(x + h)|, |f(x - h)|) / h
//! ```
//!
//! Why both terms. A central difference `(f(x + h) - f(x - h)) / 2h` in `f64` carries the
//! rounding errors of two loss evaluations divided by `2h`: for a loss of size `|f|` about
//! `EPSILON |f| / h`, that is `2e-10 |f|` at `h = 1e-6`, whatever the size of the gradient. A
//! purely relative measure would score that rounding as error on every small component (a
//! correct gradient of `1e-6` would show a relative error near `1e-4`), so the allowance `noise`
//! is subtracted first. [`LOSS_ULPS`] is generous because a loss that sums terms with some
//! cancellation is only as accurate as its terms are large. Beyond the allowance the measure is
//! relative: a gradient of `1e-7` that is off by a factor of two scores `0.5` less the
//! allowance, about `0.35` next to a loss of size 2, where an absolute tolerance of `1e-6` would
//! have passed it. The floor keeps the ratio defined when both values are zero, and measures
//! components below `1e-8` against `1e-8`: the truncation error of the central difference,
//! `h^2 |f'''| / 6`, about `2e-13 |f'''|` at `h = 1e-6`, is not in the allowance and should not
//! become a large relative error on a vanishing gradient.
//!
//! A NaN or an infinity in either gradient or in the loss is an error of NaN, which fails any
//! tolerance.

use candle_core::{Tensor, Var};

/// Gradient magnitudes below this are measured against it rather than against themselves.
pub const GRADIENT_FLOOR: f64 = 1e-8;

/// Rounding error allowed in one evaluation of the loss, in units of `f64::EPSILON` times the
/// loss's magnitude. The losses of this workspace's tests, sums of up to a few hundred terms
/// with some cancellation, stay within 30.
pub const LOSS_ULPS: f64 = 64.0;

/// Outcome of a gradient check: the worst disagreement found.
#[derive(Debug, Clone, PartialEq)]
pub struct GradReport {
    /// Number of scalar parameters compared.
    pub checked: usize,
    /// Largest [`relative_error`] over the compared elements; NaN if any was NaN.
    pub max_error: f64,
    /// Variable index and flat element index where `max_error` occurred.
    pub worst: (usize, usize),
    /// The autograd gradient at `worst`.
    pub analytic: f64,
    /// The central difference at `worst`.
    pub numeric: f64,
}

/// The error of one gradient element: `max(|analytic - numeric| - noise, 0)` over the largest of
/// `|analytic|`, `|numeric|` and [`GRADIENT_FLOOR`], where `noise` (0 if negative) is the
/// uncertainty of `numeric`. NaN if any argument is NaN or infinite.
pub fn relative_error(analytic: f64, numeric: f64, noise: f64) -> f64 {
    if !(analytic.is_finite() && numeric.is_finite() && noise.is_finite()) {
        return f64::NAN;
    }
    let excess = ((analytic - numeric).abs() - noise.max(0.0)).max(0.0);
    excess / analytic.abs().max(numeric.abs()).max(GRADIENT_FLOOR)
}

/// Compares autograd gradients of the scalar `loss` with central finite differences of step
/// `step`, element by element, with [`relative_error`] (see the module documentation).
///
/// `loss` must recompute its value from the current contents of `vars` on every call. At most
/// `max_per_var` elements of each variable are probed, spread evenly over its elements. A
/// variable the loss does not reach has a zero autograd gradient.
pub fn check_gradients<F>(
    vars: &[Var],
    loss: F,
    step: f64,
    max_per_var: usize,
) -> candle_core::Result<GradReport>
where
    F: Fn() -> candle_core::Result<Tensor>,
{
    let grads = loss()?.backward()?;
    let mut report = GradReport {
        checked: 0,
        max_error: 0.0,
        worst: (0, 0),
        analytic: 0.0,
        numeric: 0.0,
    };
    for (vi, var) in vars.iter().enumerate() {
        let analytic: Vec<f64> = match grads.get(var.as_tensor()) {
            Some(g) => g
                .flatten_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_vec1()?,
            None => vec![0.0; var.elem_count()],
        };
        let original = var.as_tensor().copy()?;
        let base: Vec<f64> = original
            .flatten_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_vec1()?;
        let n = base.len();
        let stride = n.div_ceil(max_per_var.max(1)).max(1);
        for i in (0..n).step_by(stride) {
            let eval = |delta: f64| -> candle_core::Result<f64> {
                let mut v = base.clone();
                v[i] += delta;
                let t = Tensor::from_vec(v, original.shape(), original.device())?
                    .to_dtype(original.dtype())?;
                var.set(&t)?;
                loss()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()
            };
            let (up, down) = (eval(step)?, eval(-step)?);
            let numeric = (up - down) / (2.0 * step);
            // Two evaluations, each off by up to LOSS_ULPS * EPSILON * |f|, over 2 * step.
            let noise = LOSS_ULPS * f64::EPSILON * up.abs().max(down.abs()) / step.abs();
            let err = relative_error(analytic[i], numeric, noise);
            // A NaN anywhere is the worst error and stays so: `err > NaN` is false, and a NaN
            // `err` compares false against anything.
            let worse = err.is_nan() || err > report.max_error;
            if report.checked == 0 || (!report.max_error.is_nan() && worse) {
                report.max_error = err;
                report.worst = (vi, i);
                report.analytic = analytic[i];
                report.numeric = numeric;
            }
            report.checked += 1;
        }
        var.set(&original)?;
    }
    Ok(report)
}

/// The largest `|a_i - b_i|`, NaN if any difference is NaN (where `f64::max` would drop it), and
/// infinite if the lengths differ: for comparing two computations' gradients.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).fold(0.0, |worst, (x, y)| {
        let d = (x - y).abs();
        if worst.is_nan() || d.is_nan() {
            f64::NAN
        } else {
            worst.max(d)
        }
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::{check_gradients, max_abs_diff, relative_error, GRADIENT_FLOOR};

    #[test]
    fn a_nan_gradient_after_a_good_one_fails_the_check() {
        let x = Var::new(&[3f64, 1.0], &Device::Cpu).unwrap();
        // sqrt(relu(x - 2)): a fine gradient at x = 3, probed first, and at x = 1 the relu's zero
        // times sqrt's infinite slope at 0, a NaN.
        let loss = || (x.as_tensor() - 2.0)?.relu()?.sqrt()?.sum_all();
        let report = check_gradients(std::slice::from_ref(&x), loss, 1e-6, 8).unwrap();
        assert_eq!(report.checked, 2);
        assert!(report.max_error.is_nan(), "{report:?}");
        assert_eq!(report.worst, (0, 1));
    }

    #[test]
    fn a_nan_in_the_finite_difference_fails_the_check() {
        // sqrt at 1e-7 has a finite autograd gradient, but the probe at 1e-7 - 1e-6 is NaN.
        let x = Var::new(&[1e-7f64], &Device::Cpu).unwrap();
        let loss = || x.as_tensor().sqrt()?.sum_all();
        let report = check_gradients(std::slice::from_ref(&x), loss, 1e-6, 8).unwrap();
        assert!(report.analytic.is_finite(), "{report:?}");
        assert!(report.numeric.is_nan(), "{report:?}");
        assert!(report.max_error.is_nan(), "{report:?}");
    }

    #[test]
    fn a_small_gradient_off_by_a_factor_of_two_fails_the_check() {
        // A loss of order 1 from `x`, plus 2e-7 * y whose autograd gradient is half the true one:
        // the detached copy counts in the value but not in the backward pass.
        let x = Var::new(&[0.7f64, -1.3], &Device::Cpu).unwrap();
        let y = Var::new(&[0.4f64], &Device::Cpu).unwrap();
        let loss = || {
            let big = x.as_tensor().sqr()?.sum_all()?;
            let y = y.as_tensor();
            let small = ((y * 1e-7)? + (y.detach() * 1e-7)?)?.sum_all()?;
            big + small
        };
        let vars = [x.clone(), y.clone()];
        let report = check_gradients(&vars, loss, 1e-6, 8).unwrap();
        assert_eq!(report.worst, (1, 0), "{report:?}");
        assert!((report.analytic - 1e-7).abs() < 1e-15, "{report:?}");
        assert!((report.numeric - 2e-7).abs() < 1e-9, "{report:?}");
        // 0.5 less the allowance for a loss of about 2.2: (1e-7 - 3.1e-8) / 2e-7.
        assert!(report.max_error > 0.3, "{report:?}");
        // The absolute measure this checker used before, |a - n| / max(1, |n|), passes it.
        let absolute = (report.analytic - report.numeric).abs() / report.numeric.abs().max(1.0);
        assert!(absolute < 1e-6, "{absolute}");
    }

    #[test]
    fn correct_gradients_of_every_size_pass_tightly() {
        // sum_i s_i sin(x_i) with scales from 1e-9 to 1: gradients s_i cos(x_i), next to an
        // order-one loss whose rounding is far larger than the smallest of them.
        let scales: Vec<f64> = (0..10).map(|k| 10f64.powi(-k)).collect();
        let s = Tensor::new(scales.as_slice(), &Device::Cpu).unwrap();
        let x = Var::new(&[0.3f64; 10], &Device::Cpu).unwrap();
        let loss = || (x.as_tensor().sin()? * &s)?.sum_all();
        let report = check_gradients(std::slice::from_ref(&x), loss, 1e-6, 16).unwrap();
        assert_eq!(report.checked, 10);
        assert!(report.max_error < 1e-7, "{report:?}");
    }

    #[test]
    fn the_relative_error_discounts_the_noise_and_keeps_a_floor() {
        // Relative above the allowance ...
        assert_eq!(relative_error(2.0, 1.0, 0.0), 0.5);
        assert_eq!(relative_error(1e-7, 2e-7, 0.0), 0.5);
        assert!((relative_error(1e-7, 2e-7, 5e-8) - 0.25).abs() < 1e-12);
        // ... nothing within it ...
        assert_eq!(relative_error(1.0, 1.0 + 1e-10, 2e-10), 0.0);
        // ... and measured against the floor below it.
        assert_eq!(relative_error(0.0, 0.0, 0.0), 0.0);
        let tiny = relative_error(0.0, GRADIENT_FLOOR / 100.0, 0.0);
        assert!((tiny - 0.01).abs() < 1e-12, "{tiny}");
        // A negative allowance counts as none; anything non-finite is NaN.
        assert_eq!(relative_error(2.0, 1.0, -1.0), 0.5);
        for (a, n, noise) in [
            (f64::NAN, 1.0, 0.0),
            (1.0, f64::NAN, 0.0),
            (f64::INFINITY, f64::INFINITY, 0.0),
            (1.0, 1.0, f64::INFINITY),
        ] {
            assert!(relative_error(a, n, noise).is_nan(), "{a} {n} {noise}");
        }
    }

    #[test]
    fn max_abs_diff_keeps_nan() {
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
        assert!(max_abs_diff(&[1.0, f64::NAN, 2.0], &[1.0, 0.0, 9.0]).is_nan());
        assert!(max_abs_diff(&[f64::NAN], &[0.0]).is_nan());
        assert_eq!(max_abs_diff(&[1.0], &[]), f64::INFINITY);
    }
}
