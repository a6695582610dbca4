//! The fused link step of `ntm-kernels` against this crate's composition of candle operations
//! (`update_links`, `update_precedence`, `directional_weights`), in value and gradient (f64),
//! and against finite differences.

use candle_core::{DType, Device, Tensor, Var};
use ntm_addressing::gradcheck::check_gradients;
use ntm_dnc::{directional_weights, update_links, update_precedence};
use ntm_kernels::LinkStep;
use ntm_params::Init;

fn fixed(seed: u64, name: &str, shape: &[usize]) -> Tensor {
    let count = shape.iter().product();
    Tensor::from_vec(
        Init::Uniform(1.0).draw(seed, name, count),
        shape,
        &Device::Cpu,
    )
    .unwrap()
}

/// Weightings `[b, heads, n]`: each head a distribution times `scale`.
fn weighting(seed: u64, name: &str, shape: &[usize], scale: f64) -> Tensor {
    let x = (fixed(seed, name, shape) * 4.0).unwrap();
    (ntm_addressing::softmax(&x, 2).unwrap() * scale).unwrap()
}

/// Link matrices `[b, wh, n, n]` with a zero diagonal and rows summing to less than one.
fn links(seed: u64, b: usize, wh: usize, n: usize) -> Tensor {
    let eye = Tensor::eye(n, DType::F64, &Device::Cpu).unwrap();
    (fixed(seed, "links", &[b, wh, n, n]).abs().unwrap() / n as f64)
        .unwrap()
        .broadcast_mul(&eye.affine(-1.0, 1.0).unwrap())
        .unwrap()
}

fn var(t: Tensor) -> Var {
    Var::from_tensor(&t).unwrap()
}

/// `|a - b|_max / max(|b|_max, 1e-30)`.
fn relative(a: &Tensor, b: &Tensor) -> f64 {
    let max = |t: &Tensor| -> f64 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    max(&(a - b).unwrap()) / max(b).max(1e-30)
}

/// The outputs of one link step: links, precedence, forward and backward weightings.
type Outputs = [Tensor; 4];

fn reference(links: &Tensor, precedence: &Tensor, w: &Tensor, u: &Tensor) -> Outputs {
    let l = update_links(links, precedence, w).unwrap();
    let p = update_precedence(precedence, w).unwrap();
    let (f, b) = directional_weights(&l, u).unwrap();
    [l, p, f, b]
}

/// One fused step from a flat state; also returns the next flat state.
fn fused(step: &LinkStep, state: &Tensor, w: &Tensor, u: &Tensor) -> (Outputs, Tensor) {
    let wh = step.write_heads;
    let next = step.step(state, w, u).unwrap();
    let d = step.directions(&next).unwrap();
    let outputs = [
        step.links(&next).unwrap(),
        step.precedence(&next).unwrap(),
        d.narrow(2, wh, wh).unwrap(),
        d.narrow(2, 0, wh).unwrap(),
    ];
    (outputs, next)
}

/// Two link steps from random links and precedence, fused and composed, every output of both
/// weighed into one loss: the values of every output and the gradients of every input agree.
fn agree(n: usize, wh: usize, r: usize) {
    let b = 2;
    let step = LinkStep {
        rows: n,
        read_heads: r,
        write_heads: wh,
    };
    let seed = (n * 100 + wh * 10 + r) as u64;
    let l0 = var(links(seed, b, wh, n));
    let p0 = var(weighting(seed, "p", &[b, wh, n], 0.9));
    let w = [
        var(weighting(seed, "w1", &[b, wh, n], 0.8 / wh as f64)),
        var(weighting(seed, "w2", &[b, wh, n], 0.6 / wh as f64)),
    ];
    let u = [
        var(weighting(seed, "u1", &[b, r, n], 1.0)),
        var(weighting(seed, "u2", &[b, r, n], 1.0)),
    ];
    let shapes = [
        vec![b, wh, n, n],
        vec![b, wh, n],
        vec![b, r, wh, n],
        vec![b, r, wh, n],
    ];
    let projections: Vec<Tensor> = (0..2)
        .flat_map(|t| {
            shapes
                .iter()
                .enumerate()
                .map(move |(k, s)| fixed(seed + 1, &format!("proj{t}{k}"), s))
        })
        .collect();
    let mut all: Vec<[Outputs; 2]> = Vec::new();
    let mut grads = Vec::new();
    for use_fused in [true, false] {
        let (mut l, mut p) = (l0.as_tensor().clone(), p0.as_tensor().clone());
        let mut state = step.pack(&l, &p).unwrap();
        let mut steps = Vec::new();
        for t in 0..2 {
            let outputs = if use_fused {
                let (outputs, next) = fused(&step, &state, w[t].as_tensor(), u[t].as_tensor());
                state = next;
                outputs
            } else {
                let outputs = reference(&l, &p, w[t].as_tensor(), u[t].as_tensor());
                (l, p) = (outputs[0].clone(), outputs[1].clone());
                outputs
            };
            steps.push(outputs);
        }
        let mut loss = Tensor::zeros((), DType::F64, &Device::Cpu).unwrap();
        for (t, outputs) in steps.iter().enumerate() {
            for (k, o) in outputs.iter().enumerate() {
                assert_eq!(o.dims(), shapes[k].as_slice());
                let term = (o * &projections[t * 4 + k]).unwrap().sum_all().unwrap();
                loss = (loss + term).unwrap();
            }
        }
        let g = loss.backward().unwrap();
        let inputs = [&l0, &p0, &w[0], &w[1], &u[0], &u[1]];
        grads.push(
            inputs
                .iter()
                .map(|v| g.get(v.as_tensor()).unwrap().clone())
                .collect::<Vec<_>>(),
        );
        all.push([steps[0].clone(), steps[1].clone()]);
    }
    let case = format!("N = {n}, {wh} write heads, {r} read heads");
    let names = ["links", "precedence", "forward", "backward"];
    for (t, (fused, composed)) in all[0].iter().zip(&all[1]).enumerate() {
        for (name, (a, b)) in names.iter().zip(fused.iter().zip(composed)) {
            let e = relative(a, b);
            assert!(e < 1e-12, "{case}: step {t} {name} differs by {e:e}");
        }
    }
    let inputs = ["links", "precedence", "w1", "w2", "u1", "u2"];
    for (k, name) in inputs.iter().enumerate() {
        let e = relative(&grads[0][k], &grads[1][k]);
        assert!(e < 1e-10, "{case}: gradient of {name} differs by {e:e}");
        // Every input reaches the loss.
        let size: f64 = grads[1][k]
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(size > 1e-6, "{case}: gradient of {name} is zero");
    }
}

#[test]
fn the_fused_link_step_matches_the_composition_at_16_rows() {
    for (wh, r) in [(1, 1), (1, 4), (2, 1), (2, 4)] {
        agree(16, wh, r);
    }
}

#[test]
fn the_fused_link_step_matches_the_composition_at_37_rows() {
    for (wh, r) in [(1, 1), (1, 4), (2, 1), (2, 4)] {
        agree(37, wh, r);
    }
}

#[test]
fn the_fused_link_step_matches_the_composition_at_128_rows() {
    for (wh, r) in [(1, 1), (1, 4), (2, 1), (2, 4)] {
        agree(128, wh, r);
    }
}

#[test]
fn fused_link_step_gradients_match_finite_differences() {
    let (b, wh, r, n) = (2, 2, 3, 6);
    let step = LinkStep {
        rows: n,
        read_heads: r,
        write_heads: wh,
    };
    let l0 = var(links(1, b, wh, n));
    let p0 = var(weighting(2, "p", &[b, wh, n], 0.9));
    let w = var(fixed(3, "w", &[b, wh, n]));
    let u = var(fixed(4, "u", &[b, r, n]));
    let proj = [
        fixed(5, "l", &[b, wh, n, n]),
        fixed(5, "p", &[b, wh, n]),
        fixed(5, "d", &[b, r, 2 * wh, n]),
    ];
    let report = check_gradients(
        &[l0.clone(), p0.clone(), w.clone(), u.clone()],
        || {
            // Write weightings from logits (so they stay distributions), and two steps, so that
            // the new links and precedence feed a step too.
            let ww = (ntm_addressing::softmax(w.as_tensor(), 2).unwrap() * 0.5)?;
            let first = step.step(
                &step.pack(l0.as_tensor(), p0.as_tensor())?,
                &ww,
                u.as_tensor(),
            )?;
            let second = step.step(&first, &(ww.sqr()? * 1.5)?, &u.as_tensor().sqr()?)?;
            let mut total = (step.directions(&first)? * &proj[2])?.sum_all()?;
            total = (total + (step.links(&second)? * &proj[0])?.sum_all()?)?;
            total = (total + (step.precedence(&second)? * &proj[1])?.sum_all()?)?;
            total + (step.directions(&second)? * &proj[2])?.sum_all()?
        },
        1e-6,
        200,
    )
    .unwrap();
    assert_eq!(
        report.checked,
        b * wh * n * n + b * wh * n + b * wh * n + b * r * n
    );
    assert!(report.max_error < 1e-7, "{report:?}");
}

#[test]
fn the_diagonal_of_the_links_gets_no_gradient_and_stays_zero() {
    let (b, wh, r, n) = (1, 1, 1, 5);
    let step = LinkStep {
        rows: n,
        read_heads: r,
        write_heads: wh,
    };
    // Ones everywhere, the diagonal included: the step must zero it.
    let l0 = var(Tensor::ones((b, wh, n, n), DType::F64, &Device::Cpu).unwrap());
    let p0 = weighting(1, "p", &[b, wh, n], 1.0);
    let w = weighting(2, "w", &[b, wh, n], 0.5);
    let u = weighting(3, "u", &[b, r, n], 1.0);
    let next = step
        .step(&step.pack(l0.as_tensor(), &p0).unwrap(), &w, &u)
        .unwrap();
    let l: Vec<f64> = step
        .links(&next)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let loss = step.links(&next).unwrap().sum_all().unwrap();
    let g: Vec<f64> = loss
        .backward()
        .unwrap()
        .get(l0.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    for i in 0..n {
        for j in 0..n {
            let k = i * n + j;
            if i == j {
                assert_eq!((l[k], g[k]), (0.0, 0.0), "diagonal {i}");
            } else {
                assert!(l[k] > 0.0 && g[k] > 0.0, "[{i}, {j}]: {} {}", l[k], g[k]);
            }
        }
    }
}

#[test]
fn the_fused_link_step_rejects_shapes_that_do_not_fit() {
    let step = LinkStep {
        rows: 4,
        read_heads: 2,
        write_heads: 1,
    };
    let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    let state = step
        .pack(&zeros(&[3, 1, 4, 4]), &zeros(&[3, 1, 4]))
        .unwrap();
    assert_eq!(state.dims(), &[step.state_size(3)]);
    assert!(step
        .step(&state, &zeros(&[3, 1, 4]), &zeros(&[3, 2, 4]))
        .is_ok());
    assert!(step
        .step(&state, &zeros(&[3, 1, 5]), &zeros(&[3, 2, 4]))
        .is_err());
    assert!(step
        .step(&state, &zeros(&[3, 1, 4]), &zeros(&[3, 1, 4]))
        .is_err());
    assert!(step
        .step(&state, &zeros(&[2, 1, 4]), &zeros(&[2, 2, 4]))
        .is_err());
    assert!(step
        .pack(&zeros(&[3, 1, 4, 5]), &zeros(&[3, 1, 4]))
        .is_err());
    assert!(step.links(&zeros(&[step.state_size(1) + 1])).is_err());
}
