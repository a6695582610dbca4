//! Masked binary cross-entropy from logits and the bit-error cost.

use candle_core::Tensor;

use crate::Result;

/// Sum over scored elements of the binary cross-entropy between `sigmoid(logits)` and
/// `targets`, divided by the number of sequences: nats per sequence.
///
/// Uses the overflow-free form `max(x, 0) - x t + log(1 + exp(-|x|))`. `logits` and `targets` are
/// `[T, B, O]`, `mask` is `[T, B, 1]` with 1 on scored steps.
pub fn masked_bce(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let batch = logits.dim(1)? as f64;
    let per_element =
        ((logits.relu()? - (logits * targets)?)? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok((per_element.broadcast_mul(mask)?.sum_all()? / batch)?)
}

/// [`bit_errors`] on the device: a scalar tensor of bit errors per sequence, from logits
/// `[T, B, O]`, targets of the same shape and a mask `[T, B, 1]`.
pub fn bit_errors_tensor(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let batch = logits.dim(1)? as f64;
    let predicted = logits.gt(0.0)?;
    let truth = targets.gt(0.5)?;
    let wrong = predicted.ne(&truth)?.to_dtype(logits.dtype())?;
    Ok((wrong.broadcast_mul(mask)?.sum_all()? / batch)?)
}

/// Bit errors per sequence: scored outputs where `sigmoid(x) > 1/2` disagrees with the target,
/// summed and divided by the number of sequences.
pub fn bit_errors(
    logits: &[f32],
    targets: &[f32],
    mask: &[f32],
    batch: usize,
    width: usize,
) -> f64 {
    let errors: usize = logits
        .chunks(width)
        .zip(targets.chunks(width))
        .zip(mask)
        .filter(|(_, &m)| m > 0.0)
        .map(|((x, t), _)| {
            x.iter()
                .zip(t)
                .filter(|(&x, &t)| (x > 0.0) != (t > 0.5))
                .count()
        })
        .sum();
    errors as f64 / batch.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn bce_matches_the_direct_formula_and_respects_the_mask() {
        let dev = Device::Cpu;
        let x = [-3.0f64, -0.5, 0.0, 0.7, 4.0, 2.0];
        let t = [0.0f64, 1.0, 1.0, 0.0, 1.0, 1.0];
        let m = [1.0f64, 1.0, 0.0]; // [T=3, B=1, 1]; the last step is not scored
        let logits = Tensor::from_slice(&x, (3, 1, 2), &dev).unwrap();
        let targets = Tensor::from_slice(&t, (3, 1, 2), &dev).unwrap();
        let mask = Tensor::from_slice(&m, (3, 1, 1), &dev).unwrap();
        let got: f64 = masked_bce(&logits, &targets, &mask)
            .unwrap()
            .to_scalar()
            .unwrap();
        let direct: f64 = (0..4)
            .map(|i| {
                let p = 1.0 / (1.0 + (-x[i]).exp());
                -(t[i] * p.ln() + (1.0 - t[i]) * (1.0 - p).ln())
            })
            .sum();
        assert!((got - direct).abs() < 1e-12, "{got} vs {direct}");
    }

    #[test]
    fn bce_is_finite_for_huge_logits() {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[[1e4f32, -1e4]]], &dev).unwrap();
        let targets = Tensor::new(&[[[0f32, 1.]]], &dev).unwrap();
        let mask = Tensor::new(&[[[1f32]]], &dev).unwrap();
        let got: f32 = masked_bce(&logits, &targets, &mask)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(got, 2e4);
    }

    #[test]
    fn bit_errors_count_scored_disagreements_per_sequence() {
        // T = 2, B = 2, width 2: step 0 unscored for both sequences.
        let logits = [1.0, 1.0, 1.0, 1.0, /* step 1 */ 1.0, -1.0, -1.0, -1.0];
        let targets = [0.0, 0.0, 0.0, 0.0, /* step 1 */ 1.0, 1.0, 0.0, 1.0];
        let mask = [0.0, 0.0, 1.0, 1.0];
        assert_eq!(bit_errors(&logits, &targets, &mask, 2, 2), 1.0);
        // The same on the device.
        let dev = Device::Cpu;
        let on_device: f32 = bit_errors_tensor(
            &Tensor::from_slice(&logits, (2, 2, 2), &dev).unwrap(),
            &Tensor::from_slice(&targets, (2, 2, 2), &dev).unwrap(),
            &Tensor::from_slice(&mask, (2, 2, 1), &dev).unwrap(),
        )
        .unwrap()
        .to_scalar()
        .unwrap();
        assert_eq!(on_device, 1.0);
    }
}
