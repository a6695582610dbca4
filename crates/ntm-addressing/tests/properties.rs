//! Property tests: the invariants every addressing stage must keep.

use candle_core::{DType, Device, Tensor};
use ntm_addressing::{
    address_fused, address_unfused, content, interpolate, sharpen, shift, softmax, HeadParams,
};
use proptest::prelude::*;

const TOL: f32 = 1e-5;

/// Sizes and raw values for one batch of heads over one memory.
#[derive(Debug, Clone)]
struct Case {
    b: usize,
    h: usize,
    n: usize,
    m: usize,
    memory: Vec<f32>,
    key: Vec<f32>,
    logits: Vec<f32>,
    other_logits: Vec<f32>,
    scalars: Vec<f32>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..3, 1usize..4, 3usize..17, 1usize..7).prop_flat_map(|(b, h, n, m)| {
        (
            prop::collection::vec(-2f32..2.0, b * n * m),
            prop::collection::vec(-2f32..2.0, b * h * m),
            prop::collection::vec(-5f32..5.0, b * h * n),
            prop::collection::vec(-5f32..5.0, b * h * n),
            prop::collection::vec(0f32..1.0, b * h),
        )
            .prop_map(move |(memory, key, logits, other_logits, scalars)| Case {
                b,
                h,
                n,
                m,
                memory,
                key,
                logits,
                other_logits,
                scalars,
            })
    })
}

fn t(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).unwrap()
}

fn rows(w: &Tensor) -> Vec<Vec<f32>> {
    let (b, h, n) = w.dims3().unwrap();
    let flat: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
    (0..b * h)
        .map(|i| flat[i * n..(i + 1) * n].to_vec())
        .collect()
}

fn assert_distributions(w: &Tensor) -> Result<(), TestCaseError> {
    for row in rows(w) {
        prop_assert!(
            row.iter().all(|&x| x >= 0.0 && x.is_finite()),
            "negative or non-finite: {row:?}"
        );
        let sum: f32 = row.iter().sum();
        prop_assert!((sum - 1.0).abs() < TOL, "sums to {sum}");
    }
    Ok(())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

impl Case {
    fn memory(&self) -> Tensor {
        t(&self.memory, &[self.b, self.n, self.m])
    }
    fn key(&self) -> Tensor {
        t(&self.key, &[self.b, self.h, self.m])
    }
    fn weights(&self) -> Tensor {
        softmax(&t(&self.logits, &[self.b, self.h, self.n]), 2).unwrap()
    }
    fn other_weights(&self) -> Tensor {
        softmax(&t(&self.other_logits, &[self.b, self.h, self.n]), 2).unwrap()
    }
    /// A per-head scalar mapped into `[lo, hi]`.
    fn scalar(&self, lo: f32, hi: f32) -> Tensor {
        let v: Vec<f32> = self.scalars.iter().map(|x| lo + x * (hi - lo)).collect();
        t(&v, &[self.b, self.h])
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_stage_outputs_distributions(c in case(), s_logits in prop::collection::vec(-3f32..3.0, 3)) {
        let wc = content(&c.memory(), &c.key(), &c.scalar(0.1, 30.0)).unwrap();
        assert_distributions(&wc)?;
        let wg = interpolate(&wc, &c.weights(), &c.scalar(0.0, 1.0)).unwrap();
        assert_distributions(&wg)?;
        let s_one = softmax(&t(&s_logits, &[1, 1, 3]), 2).unwrap();
        let s = s_one.broadcast_as((c.b, c.h, 3)).unwrap().contiguous().unwrap();
        let ws = shift(&wg, &s).unwrap();
        assert_distributions(&ws)?;
        let w = sharpen(&ws, &c.scalar(1.0, 20.0)).unwrap();
        assert_distributions(&w)?;
    }

    #[test]
    fn fused_and_unfused_addressing_agree(c in case(), s_logits in prop::collection::vec(-3f32..3.0, 3)) {
        let shift = softmax(&t(&s_logits, &[1, 1, 3]), 2).unwrap().broadcast_as((c.b, c.h, 3)).unwrap().contiguous().unwrap();
        let params = |gamma_max: f32| HeadParams {
            key: c.key(),
            beta: c.scalar(0.1, 30.0),
            gate: c.scalar(0.0, 1.0),
            shift: shift.clone(),
            gamma: c.scalar(1.0, gamma_max),
        };
        // Both f32 paths agree within 1e-5 at moderate sharpening ...
        let fused = address_fused(&c.memory(), &params(5.0), &c.weights()).unwrap();
        let unfused = address_unfused(&c.memory(), &params(5.0), &c.weights()).unwrap();
        assert_distributions(&fused)?;
        prop_assert!(max_abs_diff(&fused, &unfused) < TOL);
        // ... and in f64 they compute the same function at any sharpening. (In f32, a rounding of
        // the cosine is amplified by beta and gamma together: up to about 1e-5 at beta = 30 and
        // gamma = 20 on either path, which is the conditioning of the function, not an error.)
        let f64_params = |p: HeadParams| HeadParams {
            key: p.key.to_dtype(DType::F64).unwrap(),
            beta: p.beta.to_dtype(DType::F64).unwrap(),
            gate: p.gate.to_dtype(DType::F64).unwrap(),
            shift: p.shift.to_dtype(DType::F64).unwrap(),
            gamma: p.gamma.to_dtype(DType::F64).unwrap(),
        };
        let memory = c.memory().to_dtype(DType::F64).unwrap();
        let previous = c.weights().to_dtype(DType::F64).unwrap();
        let fused = address_fused(&memory, &f64_params(params(20.0)), &previous).unwrap();
        let unfused = address_unfused(&memory, &f64_params(params(20.0)), &previous).unwrap();
        let diff: f64 = (fused - unfused).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        prop_assert!(diff < 1e-12, "fused and unfused differ by {diff} in f64");
    }

    #[test]
    fn one_hot_shift_is_an_exact_rotation(c in case(), offset in -1i64..=1) {
        let w = c.weights();
        let mut s = vec![0f32; c.b * c.h * 3];
        for i in 0..c.b * c.h {
            s[i * 3 + (offset + 1) as usize] = 1.0;
        }
        let shifted = rows(&shift(&w, &t(&s, &[c.b, c.h, 3])).unwrap());
        for (before, after) in rows(&w).iter().zip(&shifted) {
            for (i, value) in after.iter().enumerate() {
                let j = (i as i64 - offset).rem_euclid(c.n as i64) as usize;
                prop_assert_eq!(*value, before[j]);
            }
        }
    }

    #[test]
    fn gamma_one_is_the_identity(c in case()) {
        let w = c.weights();
        let gamma = c.scalar(1.0, 1.0);
        prop_assert!(max_abs_diff(&sharpen(&w, &gamma).unwrap(), &w) < TOL);
    }

    #[test]
    fn gate_selects_content_or_previous(c in case()) {
        let wc = c.weights();
        let prev = c.other_weights();
        let ones = c.scalar(1.0, 1.0);
        let zeros = c.scalar(0.0, 0.0);
        prop_assert!(max_abs_diff(&interpolate(&wc, &prev, &ones).unwrap(), &wc) < TOL);
        prop_assert!(max_abs_diff(&interpolate(&wc, &prev, &zeros).unwrap(), &prev) < TOL);
    }

    #[test]
    fn content_is_invariant_to_key_scale(c in case(), scale in 0.01f64..100.0) {
        // Cosine similarity is exactly scale-invariant; the epsilon that guards zero norms is not,
        // so keep every norm well above it.
        let away_from_zero = |v: &[f32]| -> Vec<f32> { v.iter().map(|&x| if x < 0.0 { x - 0.5 } else { x + 0.5 }).collect() };
        let memory = t(&away_from_zero(&c.memory), &[c.b, c.n, c.m]);
        let key = t(&away_from_zero(&c.key), &[c.b, c.h, c.m]);
        let beta = c.scalar(0.5, 10.0);
        let w = content(&memory, &key, &beta).unwrap();
        let scaled = content(&memory, &(key * scale).unwrap(), &beta).unwrap();
        prop_assert!(max_abs_diff(&w, &scaled) < TOL);
    }

    #[test]
    fn large_beta_focuses_on_the_most_similar_row(c in case()) {
        // Make row 0 of each memory exactly the key direction of head 0 so it is the unique best
        // match for that head, with every other row clearly less similar.
        let (b, n, m) = (c.b, c.n, c.m);
        let mut memory = vec![0f32; b * n * m];
        for bi in 0..b {
            for i in 0..n {
                for j in 0..m {
                    // Rows 1.. point away from the key: cosine <= 0.
                    memory[(bi * n + i) * m + j] = if i == 0 { 1.0 } else { -1.0 - (i + j) as f32 * 0.1 };
                }
            }
        }
        let key = vec![1f32; b * c.h * m];
        let w = content(&t(&memory, &[b, n, m]), &t(&key, &[b, c.h, m]), &c.scalar(200.0, 200.0)).unwrap();
        for row in rows(&w) {
            prop_assert!(row[0] > 1.0 - 1e-4, "focus {row:?}");
        }
    }
}

#[test]
fn shift_rejects_bad_widths() {
    let w = Tensor::ones((1, 1, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let even = Tensor::ones((1, 1, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    let wide = Tensor::ones((1, 1, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        shift(&w, &even),
        Err(ntm_addressing::AddressingError::ShiftWidth { .. })
    ));
    assert!(matches!(
        shift(&w, &wide),
        Err(ntm_addressing::AddressingError::ShiftWidth { .. })
    ));
}

#[test]
fn mismatched_shapes_are_errors_not_panics() {
    let memory = Tensor::ones((2, 5, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    let key = Tensor::ones((2, 1, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let beta = Tensor::ones((2, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = content(&memory, &key, &beta).unwrap_err();
    assert!(e.to_string().contains("key"), "{e}");
}

#[test]
fn an_empty_memory_is_an_error_not_a_panic() {
    let dev = &Device::Cpu;
    let (b, h, n) = (1, 1, 4);
    let params = HeadParams {
        key: Tensor::zeros((b, h, 0), DType::F32, dev).unwrap(),
        beta: Tensor::ones((b, h), DType::F32, dev).unwrap(),
        gate: Tensor::ones((b, h), DType::F32, dev).unwrap(),
        shift: Tensor::ones((b, h, 1), DType::F32, dev).unwrap(),
        gamma: Tensor::ones((b, h), DType::F32, dev).unwrap(),
    };
    let memory = Tensor::zeros((b, n, 0), DType::F32, dev).unwrap();
    let previous = Tensor::ones((b, h, n), DType::F32, dev).unwrap();
    assert!(address_fused(&memory, &params, &previous).is_err());
}
