//! Finite-difference gradient checks, in f64, for each addressing stage and the whole pipeline.

use candle_core::{DType, Device, Tensor, Var};
use ntm_addressing::gradcheck::check_gradients;
use ntm_addressing::{
    address_fused, address_unfused, content, interpolate, sharpen, shift, softmax, HeadParams,
};

const B: usize = 2;
const H: usize = 3;
const N: usize = 7;
const M: usize = 4;
const TOL: f64 = 1e-6;

fn var(shape: &[usize], seed: u64) -> Var {
    // A small deterministic generator: a Weyl sequence mapped into [-1, 1).
    let count: usize = shape.iter().product();
    let data: Vec<f64> = (0..count)
        .map(|i| {
            let x = (i as u64 + 1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15u64)
                .wrapping_add(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
            (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu).unwrap()).unwrap()
}

/// A fixed random projection of the output to a scalar, so every output element matters.
fn project(out: &Tensor) -> candle_core::Result<Tensor> {
    let w = var(out.dims(), 99);
    (out * w.as_tensor())?.sum_all()
}

fn positive(v: &Var) -> candle_core::Result<Tensor> {
    // softplus-like positive transform built from primitives: 0.5 + x^2
    v.as_tensor().sqr()? + 0.5
}

fn unit(v: &Var) -> candle_core::Result<Tensor> {
    // sigmoid from primitives
    (v.as_tensor().neg()?.exp()? + 1.0)?.recip()
}

fn distribution(v: &Var) -> candle_core::Result<Tensor> {
    softmax(v.as_tensor(), 2).map_err(|e| candle_core::Error::Msg(e.to_string()))
}

fn run(vars: &[Var], f: impl Fn() -> candle_core::Result<Tensor>) {
    let report = check_gradients(vars, f, 1e-6, 64).unwrap();
    assert!(report.checked > 0);
    assert!(report.max_error < TOL, "gradient mismatch: {report:?}");
}

fn err(e: ntm_addressing::AddressingError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

#[test]
fn content_gradients() {
    let memory = var(&[B, N, M], 1);
    let key = var(&[B, H, M], 2);
    let beta = var(&[B, H], 3);
    run(&[memory.clone(), key.clone(), beta.clone()], || {
        let w = content(memory.as_tensor(), key.as_tensor(), &positive(&beta)?).map_err(err)?;
        project(&w)
    });
}

#[test]
fn interpolate_gradients() {
    let wc = var(&[B, H, N], 4);
    let prev = var(&[B, H, N], 5);
    let g = var(&[B, H], 6);
    run(&[wc.clone(), prev.clone(), g.clone()], || {
        let w = interpolate(&distribution(&wc)?, &distribution(&prev)?, &unit(&g)?).map_err(err)?;
        project(&w)
    });
}

#[test]
fn shift_gradients() {
    let w = var(&[B, H, N], 7);
    let s = var(&[B, H, 3], 8);
    run(&[w.clone(), s.clone()], || {
        let out = shift(&distribution(&w)?, &distribution(&s)?).map_err(err)?;
        project(&out)
    });
}

#[test]
fn wide_shift_gradients() {
    let w = var(&[B, H, N], 9);
    let s = var(&[B, H, 5], 10);
    run(&[w.clone(), s.clone()], || {
        let out = shift(&distribution(&w)?, &distribution(&s)?).map_err(err)?;
        project(&out)
    });
}

#[test]
fn sharpen_gradients() {
    let w = var(&[B, H, N], 11);
    let gamma = var(&[B, H], 12);
    run(&[w.clone(), gamma.clone()], || {
        let gamma = (positive(&gamma)? + 0.5)?;
        let out = sharpen(&distribution(&w)?, &gamma).map_err(err)?;
        project(&out)
    });
}

type AddressFn = fn(&Tensor, &HeadParams, &Tensor) -> ntm_addressing::Result<Tensor>;

/// Variables of a whole pipeline call: memory, key, beta, gate, shift, gamma, previous.
fn pipeline_vars(s: usize) -> [Var; 7] {
    pipeline_vars_sized(s, N, M)
}

/// [`pipeline_vars`] for a memory of `n` rows of width `m`.
fn pipeline_vars_sized(s: usize, n: usize, m: usize) -> [Var; 7] {
    [
        var(&[B, n, m], 13),
        var(&[B, H, m], 14),
        var(&[B, H], 15),
        var(&[B, H], 16),
        var(&[B, H, s], 17),
        var(&[B, H], 18),
        var(&[B, H, n], 19),
    ]
}

fn pipeline_loss(vars: &[Var; 7], f: AddressFn) -> candle_core::Result<Tensor> {
    let [memory, key, beta, g, s, gamma, prev] = vars;
    let params = HeadParams {
        key: key.as_tensor().clone(),
        beta: positive(beta)?,
        gate: unit(g)?,
        shift: distribution(s)?,
        gamma: (positive(gamma)? + 0.5)?,
    };
    let w = f(memory.as_tensor(), &params, &distribution(prev)?).map_err(err)?;
    project(&w)
}

#[test]
fn unfused_pipeline_gradients() {
    let vars = pipeline_vars(3);
    run(&vars, || pipeline_loss(&vars, address_unfused));
}

#[test]
fn fused_pipeline_gradients() {
    for s in [1, 3, 5] {
        let vars = pipeline_vars(s);
        run(&vars, || pipeline_loss(&vars, address_fused));
    }
}

#[test]
fn fused_and_unfused_gradients_agree() {
    // The paper's 128 x 20 fills the kernel's sixteen-lane blocks; 37 rows leave a ragged one.
    for (n, m) in [(N, M), (128, 20), (37, 5)] {
        let vars = pipeline_vars_sized(3, n, m);
        let fused = pipeline_loss(&vars, address_fused)
            .unwrap()
            .backward()
            .unwrap();
        let unfused = pipeline_loss(&vars, address_unfused)
            .unwrap()
            .backward()
            .unwrap();
        for v in &vars {
            let a = fused.get(v.as_tensor()).unwrap();
            let b = unfused.get(v.as_tensor()).unwrap();
            let scale: f64 = b.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            let diff: f64 = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(
                diff < 1e-10 * scale.max(1.0) && !diff.is_nan(),
                "{n} x {m}: gradient difference {diff}"
            );
        }
    }
}

#[test]
fn gradcheck_detects_a_wrong_gradient() {
    // A function whose forward and backward disagree: detach hides x from autograd.
    let x = var(&[3, 4], 20);
    let report = check_gradients(
        std::slice::from_ref(&x),
        || (x.as_tensor().sqr()? + x.as_tensor().detach().sqr()?)?.sum_all(),
        1e-6,
        64,
    )
    .unwrap();
    assert!(report.max_error > 1e-2, "{report:?}");
    assert_eq!(DType::F64, x.dtype());
}

#[test]
fn sharpen_gradients_at_high_gamma_on_a_spread_out_weighting() {
    // The unfused sharpening divides each row by its (detached) largest entry before the power;
    // the gradient stays exact where that matters, at many rows and a large exponent.
    let w = var(&[1, 2, 128], 21);
    let gamma = var(&[1, 2], 22);
    run(&[w.clone(), gamma.clone()], || {
        let spread = softmax(&(w.as_tensor() * 0.3)?, 2).map_err(err)?;
        let gamma = (positive(&gamma)? + 30.0)?;
        let out = sharpen(&spread, &gamma).map_err(err)?;
        project(&out)
    });
}
