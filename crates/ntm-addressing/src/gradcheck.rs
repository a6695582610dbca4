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
            if err > report.max_error || report.checked == 0 {
                report.max_error = err;
                report.worst = (vi, i);
            }
            report.checked += 1;
        }
        var.set(&original)?;
    }
    Ok(report)
}
