//! Finite-difference gradient checks for code built on candle's autograd.
//!
//! Used by this workspace's tests (addressing stages, memory writes, whole models) and useful to
//! anyone writing a custom op or memory. Work in `f64`: central differences with a step of
//! `1e-6` are then accurate to about `1e-9`.

use candle_core::{Tensor, Var};

/// Outcome of a gradient check: the worst disagreement found.
#[derive(Debug, Clone, PartialEq)]
pub struct GradReport {
    /// Number of scalar parameters compared.
    pub checked: usize,
    /// Largest `|analytic - numeric| / max(1, |numeric|)` over the compared elements.
    pub max_error: f64,
    /// Variable index and flat element index where `max_error` occurred.
    pub worst: (usize, usize),
}

/// Compares autograd gradients of the scalar `loss` with central finite differences.
///
/// `loss` must recompute its value from the current contents of `vars` on every call. At most
/// `max_per_var` elements of each variable are probed, spread evenly over its elements.
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
            let numeric = (eval(step)? - eval(-step)?) / (2.0 * step);
            let err = (analytic[i] - numeric).abs() / numeric.abs().max(1.0);
            // A NaN anywhere is the worst error and stays so: `err > NaN` is false, and a NaN
            // `err` compares false against anything.
            let worse = err.is_nan() || err > report.max_error;
            if report.checked == 0 || (!report.max_error.is_nan() && worse) {
                report.max_error = err;
                report.worst = (vi, i);
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
    use candle_core::{Device, Var};

    use super::{check_gradients, max_abs_diff};

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
    fn max_abs_diff_keeps_nan() {
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
        assert!(max_abs_diff(&[1.0, f64::NAN, 2.0], &[1.0, 0.0, 9.0]).is_nan());
        assert!(max_abs_diff(&[f64::NAN], &[0.0]).is_nan());
        assert_eq!(max_abs_diff(&[1.0], &[]), f64::INFINITY);
    }
}
