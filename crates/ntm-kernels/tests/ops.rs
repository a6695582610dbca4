//! Each op of the public API against a composition of candle operations, in value and
//! gradient (f64), and its error paths. The domain crates hold the agreement tests against
//! their own reference paths and the finite-difference checks.

use candle_core::{DType, Device, Tensor, Var};
use ntm_kernels::{
    adam, add_bias, address, clip, lstm_cell, rmsprop, write, Adam, MemoryStep, Rmsprop, StepWeight,
};

/// Deterministic values in `[-scale, scale)`: a Weyl sequence.
fn values(shape: &[usize], seed: u64, scale: f64) -> Tensor {
    let count: usize = shape.iter().product();
    let data: Vec<f64> = (0..count)
        .map(|i| {
            let x = (i as u64 + 1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
            ((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn var(shape: &[usize], seed: u64) -> Var {
    Var::from_tensor(&values(shape, seed, 1.0)).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// The value of `loss` and its gradients with respect to `vars`, for two implementations.
fn compare(vars: &[Var], loss: impl Fn(bool) -> Tensor, tol: f64) {
    let (fused, reference) = (loss(true), loss(false));
    assert!(max_diff(&fused, &reference) < tol, "values differ");
    let (gf, gr) = (fused.backward().unwrap(), reference.backward().unwrap());
    for (i, v) in vars.iter().enumerate() {
        let (a, b) = (
            gf.get(v.as_tensor()).unwrap(),
            gr.get(v.as_tensor()).unwrap(),
        );
        assert!(
            max_diff(a, b) < tol,
            "gradient {i} differs by {}",
            max_diff(a, b)
        );
    }
}

/// A scalar that weighs every element of `t` differently.
fn project(t: &Tensor, seed: u64) -> Tensor {
    (t * values(t.dims(), seed, 1.0))
        .unwrap()
        .sum_all()
        .unwrap()
}

#[test]
fn add_bias_and_clip_match_broadcast_add_and_clamp() {
    let x = Var::from_tensor(&values(&[4, 5], 1, 3.0)).unwrap();
    let bias = var(&[5], 2);
    compare(
        &[x.clone(), bias.clone()],
        |fused| {
            let y = if fused {
                clip(&add_bias(x.as_tensor(), bias.as_tensor()).unwrap(), 2.0).unwrap()
            } else {
                x.as_tensor()
                    .broadcast_add(bias.as_tensor())
                    .unwrap()
                    .clamp(-2.0, 2.0)
                    .unwrap()
            };
            project(&y, 3)
        },
        1e-12,
    );
    // Some entries are clipped, so the zero gradient is exercised.
    let sum = add_bias(x.as_tensor(), bias.as_tensor()).unwrap();
    let clipped = clip(&sum, 2.0).unwrap();
    assert!(max_diff(&sum, &clipped) > 0.1);
}

#[test]
fn add_bias_takes_strided_inputs_and_rejects_a_bias_of_another_width() {
    let x = Tensor::new(&[[1f32, 2.0], [3.0, 4.0], [5.0, 6.0]], &Device::Cpu).unwrap();
    let bias = Tensor::new(&[10f32, 20.0, 30.0], &Device::Cpu).unwrap();
    let y: Vec<Vec<f32>> = add_bias(&x.t().unwrap(), &bias).unwrap().to_vec2().unwrap();
    assert_eq!(y, vec![vec![11.0, 23.0, 35.0], vec![12.0, 24.0, 36.0]]);
    assert!(add_bias(&x, &bias).is_err());
    assert!(add_bias(
        &x.to_dtype(DType::F64).unwrap(),
        &bias.narrow(0, 0, 2).unwrap()
    )
    .is_err());
}

#[test]
fn lstm_cell_matches_its_composition() {
    let z = Var::from_tensor(&values(&[3, 4 * 5], 4, 4.0)).unwrap();
    let c = var(&[3, 5], 5);
    compare(
        &[z.clone(), c.clone()],
        |fused| {
            let (h, c_next) = if fused {
                lstm_cell(z.as_tensor(), c.as_tensor()).unwrap()
            } else {
                let (z, c) = (z.as_tensor(), c.as_tensor());
                let sig = |t: Tensor| (t.neg().unwrap().exp().unwrap() + 1.0).unwrap().recip();
                let gate = |k: usize| z.narrow(1, k * 5, 5).unwrap();
                let (i, f, o) = (
                    sig(gate(0)).unwrap(),
                    sig(gate(1)).unwrap(),
                    sig(gate(3)).unwrap(),
                );
                let c_next = ((f * c).unwrap() + (i * gate(2).tanh().unwrap()).unwrap()).unwrap();
                ((o * c_next.tanh().unwrap()).unwrap(), c_next)
            };
            (project(&h, 6) + project(&c_next, 7)).unwrap()
        },
        1e-12,
    );
    // A strided cell state (a column block of a wider matrix) reads the same numbers.
    let wide = values(&[3, 9], 8, 1.0);
    let c = wide.narrow(1, 2, 5).unwrap();
    let (h1, c1) = lstm_cell(z.as_tensor(), &c).unwrap();
    let (h2, c2) = lstm_cell(z.as_tensor(), &c.contiguous().unwrap()).unwrap();
    assert_eq!(max_diff(&h1, &h2) + max_diff(&c1, &c2), 0.0);
    assert!(lstm_cell(z.as_tensor(), &values(&[3, 4], 9, 1.0)).is_err());
    assert!(lstm_cell(&values(&[3, 0], 9, 1.0), &values(&[3, 0], 9, 1.0)).is_err());
}

#[test]
fn write_matches_erase_then_add() {
    for heads in [1, 3] {
        let (b, n, m) = (2, 5, 3);
        let memory = var(&[b, n, m], 10);
        let weights = var(&[b, heads, n], 11);
        let erase = var(&[b, heads, m], 12);
        let add = var(&[b, heads, m], 13);
        let vars = [memory.clone(), weights.clone(), erase.clone(), add.clone()];
        compare(
            &vars,
            |fused| {
                let (mem, w, e, a) = (
                    memory.as_tensor(),
                    weights.as_tensor(),
                    erase.as_tensor(),
                    add.as_tensor(),
                );
                let out = if fused {
                    write(mem, w, e, a).unwrap()
                } else {
                    let w_t = w.transpose(1, 2).unwrap().contiguous().unwrap();
                    let mut kept = mem.clone();
                    for h in 0..heads {
                        let outer = w_t
                            .narrow(2, h, 1)
                            .unwrap()
                            .matmul(&e.narrow(1, h, 1).unwrap())
                            .unwrap();
                        kept = (&kept - (&kept * outer).unwrap()).unwrap();
                    }
                    (kept + w_t.matmul(a).unwrap()).unwrap()
                };
                project(&out, 14)
            },
            1e-12,
        );
    }
    let memory = values(&[2, 5, 3], 1, 1.0);
    let w = values(&[2, 1, 5], 2, 1.0);
    let e = values(&[2, 1, 3], 3, 1.0);
    assert!(write(&memory, &w, &e, &values(&[2, 1, 4], 4, 1.0)).is_err());
    assert!(write(&memory, &values(&[2, 1, 4], 5, 1.0), &e, &e).is_err());
}

/// Packed parameters `[B, H, M + S + 3]` of heads with the given keys, beta 50, gate 1, a
/// one-hot shift at `offset` of `-1..=1`, gamma 1.
fn packed(keys: &Tensor, offset: usize) -> Tensor {
    let (b, h, _) = keys.dims3().unwrap();
    let ones = Tensor::ones((b, h, 1), DType::F64, &Device::Cpu).unwrap();
    let mut shift = vec![0f64; 3];
    shift[offset] = 1.0;
    let shift = Tensor::new(shift.as_slice(), &Device::Cpu)
        .unwrap()
        .reshape((1, 1, 3))
        .unwrap()
        .broadcast_as((b, h, 3))
        .unwrap();
    Tensor::cat(&[keys, &(&ones * 50.0).unwrap(), &ones, &shift, &ones], 2).unwrap()
}

#[test]
fn address_focuses_on_the_key_and_shifts() {
    // Rows are the four unit directions of the plane; the keys point at rows 1 and 3.
    let memory = Tensor::new(
        &[[[1f64, 0.], [0., 1.], [-1., 0.], [0., -1.]]],
        &Device::Cpu,
    )
    .unwrap();
    let keys = Tensor::new(&[[[0f64, 1.], [0., -1.]]], &Device::Cpu).unwrap();
    let previous = Tensor::full(0.25f64, (1, 2, 4), &Device::Cpu).unwrap();
    for (offset, rows) in [(1, [1, 3]), (2, [2, 0]), (0, [0, 2])] {
        let w: Vec<Vec<f64>> = address(&memory, &packed(&keys, offset), &previous)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        for (head, &row) in rows.iter().enumerate() {
            assert!(w[head][row] > 0.99, "offset {offset}, head {head}: {w:?}");
            assert!((w[head].iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
    // Shapes that do not fit are errors, not panics.
    let params = packed(&keys, 1);
    assert!(address(
        &memory,
        &params,
        &Tensor::ones((1, 2, 5), DType::F64, &Device::Cpu).unwrap()
    )
    .is_err());
    assert!(address(&memory, &params.narrow(2, 0, 5).unwrap(), &previous).is_err());
    let even = Tensor::cat(&[&params, &params.narrow(2, 0, 1).unwrap()], 2).unwrap();
    assert!(address(&memory, &even, &previous).is_err());
    assert!(address(&memory.to_dtype(DType::F32).unwrap(), &params, &previous).is_err());
}

fn step_sizes() -> MemoryStep {
    MemoryStep {
        rows: 6,
        width: 3,
        read_heads: 2,
        write_heads: 2,
        shifts: 3,
    }
}

#[test]
fn a_packed_state_comes_apart_into_its_parts() {
    let step = step_sizes();
    let memory = values(&[2, 6, 3], 20, 1.0);
    let weights = values(&[2, 4, 6], 21, 1.0);
    let reads = values(&[2, 6], 22, 1.0);
    let state = step.pack(&memory, &weights, &reads).unwrap();
    assert_eq!(state.tensor().dims(), &[step.state_size(2)]);
    assert_eq!(max_diff(&step.memory(&state).unwrap(), &memory), 0.0);
    assert_eq!(max_diff(&step.weights(&state).unwrap(), &weights), 0.0);
    assert_eq!(max_diff(&step.reads(&state).unwrap(), &reads), 0.0);
    assert!(step
        .pack(&memory, &weights, &values(&[2, 5], 23, 1.0))
        .is_err());
    // A state of other sizes does not fit.
    let other = MemoryStep { rows: 5, ..step };
    let odd = other
        .pack(
            &values(&[2, 5, 3], 24, 1.0),
            &values(&[2, 4, 5], 25, 1.0),
            &reads,
        )
        .unwrap();
    assert!(step.memory(&odd).is_err());
    assert!(step
        .step(&odd, &values(&[2, step.interface_size()], 26, 1.0))
        .is_err());
}

#[test]
fn a_memory_step_gives_distributions_and_rejects_a_wrong_interface() {
    let step = step_sizes();
    let uniform = Tensor::full(1.0 / 6.0, (2, 4, 6), &Device::Cpu).unwrap();
    let state = step
        .pack(
            &values(&[2, 6, 3], 30, 1.0),
            &uniform,
            &values(&[2, 6], 31, 1.0),
        )
        .unwrap();
    let interface = values(&[2, step.interface_size()], 32, 2.0);
    let next = step.step(&state, &interface).unwrap();
    let sums: Vec<f64> = step
        .weights(&next)
        .unwrap()
        .sum(2)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-12), "{sums:?}");
    // The reads are the read weightings times the written memory.
    let (memory, weights) = (step.memory(&next).unwrap(), step.weights(&next).unwrap());
    let reads = weights
        .narrow(1, 2, 2)
        .unwrap()
        .matmul(&memory)
        .unwrap()
        .reshape((2, 6))
        .unwrap();
    assert!(max_diff(&reads, &step.reads(&next).unwrap()) < 1e-12);
    let wide = values(&[2, step.interface_size() + 1], 33, 1.0);
    assert!(step.step(&state, &wide).is_err());
}

#[test]
fn a_detached_state_passes_no_gradient_back() {
    let step = step_sizes();
    let memory = var(&[2, 6, 3], 40);
    let uniform = Tensor::full(1.0 / 6.0, (2, 4, 6), &Device::Cpu).unwrap();
    let start = step
        .pack(memory.as_tensor(), &uniform, &values(&[2, 6], 41, 1.0))
        .unwrap();
    let (x1, x2) = (
        var(&[2, step.interface_size()], 42),
        var(&[2, step.interface_size()], 43),
    );
    let s1 = step.step(&start, x1.as_tensor()).unwrap();
    let loss = |s: &ntm_kernels::StepState| {
        let next = step.step(s, x2.as_tensor()).unwrap();
        let memory = step
            .memory(&next)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        (memory + step.reads(&next).unwrap().sum_all().unwrap()).unwrap()
    };
    let (through, beside) = (loss(&s1), loss(&s1.detach()));
    assert_eq!(
        through.to_scalar::<f64>().unwrap(),
        beside.to_scalar::<f64>().unwrap()
    );

    let g_through = through.backward().unwrap();
    // From the detached state the gradient reaches the last step's interface only.
    let g = beside.backward().unwrap();
    assert!(g.get(memory.as_tensor()).is_none());
    assert!(g.get(x1.as_tensor()).is_none());
    assert!(g.get(x2.as_tensor()).is_some());

    // Beside the attached path it changes nothing before the detached state, and leaves
    // nothing behind for a later pass.
    let g_both = (&through + &beside).unwrap().backward().unwrap();
    for v in [&memory, &x1] {
        let (a, b) = (g_through.get(v.as_tensor()), g_both.get(v.as_tensor()));
        assert_eq!(max_diff(a.unwrap(), b.unwrap()), 0.0);
    }
    let twice = (g_through.get(x2.as_tensor()).unwrap() * 2.0).unwrap();
    assert!(max_diff(g_both.get(x2.as_tensor()).unwrap(), &twice) < 1e-12);
}

/// How a recurrence multiplies by its weight.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Product {
    /// candle's matmul with the weight's transposed view.
    Candle,
    /// A [`StepWeight`] bound to the transposed view.
    Bound,
    /// A [`StepWeight`] bound to the stored weight with `bind_transposed`.
    BoundTransposed,
}

/// `steps` products of a weight with inputs that depend on it (a recurrence, as in an LSTM);
/// the gradients of the weight and of the first input.
fn recurrent_grads(w: &Var, x0: &Var, product: Product, steps: usize) -> (Tensor, Tensor) {
    // The weight enters as a transposed view, as an LSTM's does.
    let wt = w.as_tensor().t().unwrap();
    let step = match product {
        Product::Candle | Product::Bound => StepWeight::bind(&wt).unwrap(),
        Product::BoundTransposed => StepWeight::bind_transposed(w.as_tensor()).unwrap(),
    };
    let mut x = x0.as_tensor().clone();
    let mut loss = x.sum_all().unwrap();
    for t in 0..steps {
        let y = match product {
            Product::Candle => x.matmul(&wt).unwrap(),
            _ => step.matmul(&x).unwrap(),
        };
        x = y.tanh().unwrap();
        let weights = values(x.dims(), t as u64, 1.0).to_dtype(x.dtype()).unwrap();
        loss = (loss + (&x * weights).unwrap().sum_all().unwrap()).unwrap();
    }
    let grads = loss.backward().unwrap();
    (
        grads.get(w.as_tensor()).unwrap().clone(),
        grads.get(x0.as_tensor()).unwrap().clone(),
    )
}

#[test]
fn a_step_weight_sums_the_gradient_candle_would() {
    for dtype in [DType::F32, DType::F64] {
        let to = |v: Var| Var::from_tensor(&v.as_tensor().to_dtype(dtype).unwrap()).unwrap();
        // One and two rows wait and are added block by block; three go through gemm at once.
        // The weight is large enough for several blocks.
        for (rows, size) in [(1, 6), (1, 150), (2, 150), (3, 6), (3, 150)] {
            let (w, x0) = (to(var(&[size, size], 1)), to(var(&[rows, size], 2)));
            let (gw, gx) = recurrent_grads(&w, &x0, Product::Candle, 5);
            let (bw, bx) = recurrent_grads(&w, &x0, Product::Bound, 5);
            let (tw, tx) = recurrent_grads(&w, &x0, Product::BoundTransposed, 5);
            let what = format!("{dtype:?}, {rows} rows of {size}");
            if rows == 1 {
                // candle rounds each product and adds it to the sum, and so does the binding.
                assert_eq!(max_diff(&gw, &bw), 0.0, "{what}: weight");
            } else {
                // The same terms in the same order; gemm may round a product that it adds
                // into its destination in another last bit.
                let tol = if dtype == DType::F32 { 1e-4 } else { 1e-12 };
                assert!(max_diff(&gw, &bw) <= tol, "{what}: weight");
                assert!(max_diff(&gx, &bx) <= tol, "{what}: input");
            }
            // Bound either way, the same sum to the bit, and the same input gradient.
            assert_eq!(max_diff(&bw, &tw), 0.0, "{what}: transposed binding");
            assert_eq!(max_diff(&bx, &tx), 0.0, "{what}: transposed binding, input");
            assert!(tw.is_contiguous(), "{what}");
            assert!(max_diff(&gw, &gw.zeros_like().unwrap()) > 0.0);
        }
    }
}

#[test]
fn a_step_weight_gives_every_backward_pass_its_own_sum() {
    let (w, x0) = (var(&[4, 4], 3), var(&[2, 4], 4));
    let wt = w.as_tensor().t().unwrap();
    let step = StepWeight::bind(&wt).unwrap();
    let loss = step
        .matmul(&step.matmul(x0.as_tensor()).unwrap())
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    let first = loss.backward().unwrap();
    let second = loss.backward().unwrap();
    let (a, b) = (
        first.get(w.as_tensor()).unwrap(),
        second.get(w.as_tensor()).unwrap(),
    );
    assert_eq!(max_diff(a, b), 0.0);
    // The same two products through candle's matmul.
    let plain = x0
        .as_tensor()
        .matmul(&wt)
        .unwrap()
        .matmul(&wt)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(max_diff(a, plain.get(w.as_tensor()).unwrap()) < 1e-12);
}

#[test]
fn a_step_weight_rejects_what_it_cannot_bind_or_multiply() {
    let v = var(&[4], 5);
    assert!(StepWeight::bind(v.as_tensor()).is_err());
    let w = var(&[4, 3], 6);
    let step = StepWeight::bind(w.as_tensor()).unwrap();
    assert!(step.matmul(&values(&[2, 5], 7, 1.0)).is_err());
    assert_eq!(
        step.matmul(&values(&[2, 4], 7, 1.0)).unwrap().dims(),
        &[2, 3]
    );
}

/// RMSProp as the training crate composes it from candle operations.
fn rmsprop_composed(w: &Tensor, g: &Tensor, s: &[Tensor], hp: Rmsprop) -> (Tensor, Vec<Tensor>) {
    let (a, m) = (hp.alpha, hp.momentum);
    let n = ((&s[0] * a).unwrap() + (g.sqr().unwrap() * (1.0 - a)).unwrap()).unwrap();
    let gbar = ((&s[1] * a).unwrap() + (g * (1.0 - a)).unwrap()).unwrap();
    let denom = ((&n - gbar.sqr().unwrap()).unwrap() + hp.eps)
        .unwrap()
        .sqrt()
        .unwrap();
    let step = (g / denom).unwrap().affine(hp.lr, 0.0).unwrap();
    let delta = ((&s[2] * m).unwrap() - step).unwrap();
    ((w + &delta).unwrap(), vec![n, gbar, delta])
}

/// Adam as the training crate composes it from candle operations.
fn adam_composed(w: &Tensor, g: &Tensor, s: &[Tensor], hp: Adam) -> (Tensor, Vec<Tensor>) {
    let (b1, b2) = (hp.beta1, hp.beta2);
    let m = ((&s[0] * b1).unwrap() + (g * (1.0 - b1)).unwrap()).unwrap();
    let v = ((&s[1] * b2).unwrap() + (g.sqr().unwrap() * (1.0 - b2)).unwrap()).unwrap();
    let m_hat = (&m / (1.0 - b1.powi(hp.t))).unwrap();
    let v_hat = (&v / (1.0 - b2.powi(hp.t))).unwrap();
    let update = (m_hat / (v_hat.sqrt().unwrap() + hp.eps).unwrap()).unwrap();
    ((w - (update * hp.lr).unwrap()).unwrap(), vec![m, v])
}

#[test]
fn the_optimiser_updates_are_their_compositions_to_the_bit() {
    for dtype in [DType::F32, DType::F64] {
        let t = |shape: &[usize], seed: u64, scale: f64| {
            values(shape, seed, scale).to_dtype(dtype).unwrap()
        };
        let shape = [7, 33];
        let (mut w1, mut w2) = (t(&shape, 1, 1.0), t(&shape, 1, 1.0));
        let zero = w1.zeros_like().unwrap();
        let zeros = || zero.clone();
        let (mut r1, mut r2) = (
            vec![zeros(), zeros(), zeros()],
            vec![zeros(), zeros(), zeros()],
        );
        for step in 0..4 {
            // Gradients spanning several orders of magnitude, and some exact zeros.
            let g = t(&shape, 10 + step, 10f64.powi(step as i32 - 2));
            let g = (&g * g.ge(0.0).unwrap().to_dtype(dtype).unwrap()).unwrap();
            let hp = Rmsprop {
                lr: 1e-4 * (step + 1) as f64,
                alpha: 0.95,
                momentum: 0.9,
                eps: 1e-4,
            };
            let (w, s) = rmsprop(&w1, &g, [&r1[0], &r1[1], &r1[2]], hp).unwrap();
            let (w_ref, s_ref) = rmsprop_composed(&w2, &g, &r2, hp);
            assert_eq!(max_diff(&w, &w_ref), 0.0, "{dtype:?} rmsprop step {step}");
            for (a, b) in s.iter().zip(&s_ref) {
                assert_eq!(max_diff(a, b), 0.0, "{dtype:?} rmsprop state, step {step}");
            }
            assert!(max_diff(&w, &w1) > 0.0, "the update moves the weight");
            (w1, r1, w2, r2) = (w, s.to_vec(), w_ref, s_ref);
        }
        let mut a1 = vec![zeros(), zeros()];
        let mut a2 = a1.clone();
        let (mut w2, mut w3) = (w1.clone(), w1.clone());
        for step in 1..=4 {
            let g = t(&shape, 20 + step as u64, 0.1);
            let hp = Adam {
                lr: 3e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                t: step,
            };
            let (w, s) = adam(&w2, &g, [&a1[0], &a1[1]], hp).unwrap();
            let (w_ref, s_ref) = adam_composed(&w3, &g, &a2, hp);
            assert_eq!(max_diff(&w, &w_ref), 0.0, "{dtype:?} adam step {step}");
            for (a, b) in s.iter().zip(&s_ref) {
                assert_eq!(max_diff(a, b), 0.0, "{dtype:?} adam state, step {step}");
            }
            (w2, a1, w3, a2) = (w, s.to_vec(), w_ref, s_ref);
        }
    }
}

#[test]
fn the_optimiser_updates_reject_mismatched_tensors() {
    let w = values(&[3, 4], 1, 1.0).to_dtype(DType::F32).unwrap();
    let z = w.zeros_like().unwrap();
    let wrong = values(&[4, 3], 2, 1.0).to_dtype(DType::F32).unwrap();
    let hp = Rmsprop {
        lr: 1e-3,
        alpha: 0.95,
        momentum: 0.9,
        eps: 1e-4,
    };
    assert!(rmsprop(&w, &wrong, [&z, &z, &z], hp).is_err());
    assert!(rmsprop(&w, &z.to_dtype(DType::F64).unwrap(), [&z, &z, &z], hp).is_err());
    let hp = Adam {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        t: 1,
    };
    assert!(adam(&w, &z, [&z, &wrong], hp).is_err());
    let ints = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
    assert!(adam(&ints, &ints, [&ints, &ints], hp).is_err());
}
