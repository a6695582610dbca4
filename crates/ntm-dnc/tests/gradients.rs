//! Finite-difference gradient checks in f64: allocation, the link update, and whole DNC steps.

use candle_core::{DType, Device, Tensor, Var};
use ntm_addressing::gradcheck::check_gradients;
use ntm_dnc::{
    allocation, exclusive_cumprod, update_links, update_precedence, write_allocations, DncConfig,
    DncMemory, DncState,
};
use ntm_memory::Memory;
use ntm_params::{Init, Params};

fn draw(seed: u64, name: &str, count: usize) -> Vec<f64> {
    Init::Uniform(1.0).draw(seed, name, count)
}

fn var(values: Vec<f64>, shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
}

fn fixed(seed: u64, name: &str, shape: &[usize]) -> Tensor {
    Tensor::from_vec(
        draw(seed, name, shape.iter().product()),
        shape,
        &Device::Cpu,
    )
    .unwrap()
}

fn msg<E: std::fmt::Display>(e: E) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// Distinct usages in `(0.05, 0.95)`, at least `0.9 / (2n)` apart, so that a step of `1e-6`
/// never reorders them.
fn distinct_usage(seed: u64, b: usize, n: usize) -> Vec<f64> {
    (0..b)
        .flat_map(|k| {
            let keys = draw(seed, &format!("order{k}"), n);
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&i, &j| keys[i].total_cmp(&keys[j]));
            let mut u = vec![0.0; n];
            for (rank, i) in order.into_iter().enumerate() {
                u[i] = 0.05 + 0.9 * (rank as f64 + 0.5) / n as f64;
            }
            u
        })
        .collect()
}

#[test]
fn allocation_gradients_match_finite_differences() {
    let (b, n) = (2, 7);
    let usage = var(distinct_usage(1, b, n), &[b, n]);
    let gates = var(vec![0.9, 0.3, 0.6, 0.8], &[b, 2]);
    let proj1 = fixed(2, "p1", &[b, n]);
    let proj2 = fixed(3, "p2", &[b, 2, n]);
    let report = check_gradients(
        &[usage.clone(), gates.clone()],
        || {
            let one = allocation(usage.as_tensor()).map_err(msg)?;
            let two = write_allocations(usage.as_tensor(), gates.as_tensor()).map_err(msg)?;
            (one * &proj1)?.sum_all()? + (two * &proj2)?.sum_all()?
        },
        1e-6,
        64,
    )
    .unwrap();
    assert_eq!(report.checked, b * n + 4);
    assert!(report.max_error < 1e-7, "{report:?}");
}

#[test]
fn exclusive_cumprod_gradients_match_finite_differences_with_zeros() {
    let mut x = draw(4, "x", 19);
    x[5] = 0.0;
    x[11] = 0.0;
    let x = var(x, &[1, 19]);
    let proj = fixed(5, "p", &[1, 19]);
    let report = check_gradients(
        std::slice::from_ref(&x),
        || (exclusive_cumprod(x.as_tensor()).map_err(msg)? * &proj)?.sum_all(),
        1e-6,
        64,
    )
    .unwrap();
    assert_eq!(report.checked, 19);
    assert!(report.max_error < 1e-8, "{report:?}");
}

#[test]
fn link_update_gradients_match_finite_differences() {
    let (b, h, n) = (2, 2, 5);
    let off_diagonal: Vec<f64> = (0..b * h * n * n)
        .map(|k| if (k / n) % n == k % n { 0.0 } else { 1.0 })
        .collect();
    let links: Vec<f64> = draw(6, "links", b * h * n * n)
        .iter()
        .zip(&off_diagonal)
        .map(|(x, m)| (x.abs() / n as f64) * m)
        .collect();
    let links = var(links, &[b, h, n, n]);
    let precedence = var(
        draw(7, "p", b * h * n)
            .iter()
            .map(|x| x.abs() / n as f64)
            .collect(),
        &[b, h, n],
    );
    let logits = var(draw(8, "w", b * h * n), &[b, h, n]);
    let proj = fixed(9, "proj", &[b, h, n, n]);
    let proj_p = fixed(10, "proj_p", &[b, h, n]);
    let report = check_gradients(
        &[links.clone(), precedence.clone(), logits.clone()],
        || {
            let w = (ntm_addressing::softmax(logits.as_tensor(), 2).map_err(msg)? * 0.8)?;
            let l = update_links(links.as_tensor(), precedence.as_tensor(), &w).map_err(msg)?;
            let p = update_precedence(precedence.as_tensor(), &w).map_err(msg)?;
            // A second write, so that the new precedence feeds links too.
            let w2 = ntm_addressing::softmax(&(logits.as_tensor() * -1.0)?, 2).map_err(msg)?;
            let l2 = update_links(&l, &p, &w2).map_err(msg)?;
            (l2 * &proj)?.sum_all()? + (p * &proj_p)?.sum_all()?
        },
        1e-6,
        64,
    )
    .unwrap();
    assert_eq!(report.checked, 50 + 20 + 20);
    assert!(report.max_error < 1e-7, "{report:?}");
}

/// A mid-episode state of a memory of `config`: random contents, distinct usages, weightings
/// that are (scaled) distributions, small links with a zero diagonal.
fn random_state(config: &DncConfig, b: usize, seed: u64) -> DncState {
    let (n, w, r, wh) = (
        config.rows,
        config.width,
        config.read_heads,
        config.write_heads,
    );
    let dist = |name: &str, heads: usize, scale: f64| {
        let x = fixed(seed, name, &[b, heads, n]);
        (ntm_addressing::softmax(&(x * 3.0).unwrap(), 2).unwrap() * scale).unwrap()
    };
    let mut state = DncState::zeros(config, b, DType::F64, &Device::Cpu).unwrap();
    state.memory = fixed(seed, "memory", &[b, n, w]);
    state.usage = Tensor::from_vec(distinct_usage(seed, b, n), (b, n), &Device::Cpu).unwrap();
    state.read_weights = dist("read", r, 1.0);
    state.write_weights = dist("write", wh, 0.7);
    state.precedence = dist("precedence", wh, 0.9);
    let eye = Tensor::eye(n, DType::F64, &Device::Cpu).unwrap();
    state.links = (fixed(seed, "links", &[b, wh, n, n]).abs().unwrap() / n as f64)
        .unwrap()
        .broadcast_mul(&eye.affine(-1.0, 1.0).unwrap())
        .unwrap();
    state.reads = fixed(seed, "reads", &[b, r * w]);
    state
}

#[test]
fn whole_steps_with_two_read_and_two_write_heads_match_finite_differences() {
    let config = DncConfig {
        rows: 6,
        width: 3,
        read_heads: 2,
        write_heads: 2,
    };
    let (b, steps) = (2, 4);
    let params = Params::new(0, DType::F64, &Device::Cpu);
    let memory = DncMemory::new(&params, &config).unwrap();
    let size = memory.interface_size();
    let interface = var(
        draw(11, "interface", steps * b * size)
            .iter()
            .map(|x| 2.0 * x)
            .collect(),
        &[steps, b, size],
    );
    let start = random_state(&config, b, 12);
    let proj = fixed(13, "proj", &[steps, b, memory.read_size()]);
    let proj_usage = fixed(14, "proj_usage", &[b, config.rows]);
    // The write weightings of every step at the unperturbed interface.
    let mut recorded = vec![start.write_weights.clone()];
    let mut state = start.clone();
    for t in 0..steps {
        state = memory
            .step(&interface.as_tensor().get(t).unwrap(), &state)
            .unwrap();
        recorded.push(state.write_weights.detach());
    }
    // The usage update takes no gradient through the previous write weightings. Feeding it the
    // recorded ones (constants: the state's write weightings are used for nothing else) makes the
    // finite differences hold them fixed too; `live` leaves them live instead.
    let (start, recorded, proj, proj_usage) = (&start, &recorded, &proj, &proj_usage);
    let (memory, interface) = (&memory, &interface);
    let loss = |live: bool| {
        move || {
            let mut state = start.clone();
            let mut total = Tensor::zeros((), DType::F64, &Device::Cpu)?;
            for (t, previous_writes) in recorded.iter().enumerate().take(steps) {
                if !live {
                    state.write_weights = previous_writes.clone();
                }
                state = memory
                    .step(&interface.as_tensor().get(t)?, &state)
                    .map_err(msg)?;
                total = (total + (memory.reads(&state) * proj.get(t)?)?.sum_all()?)?;
            }
            total + (state.usage * proj_usage)?.sum_all()?
        }
    };
    let report = check_gradients(std::slice::from_ref(interface), loss(false), 1e-6, 400).unwrap();
    assert_eq!(report.checked, steps * b * size);
    assert!(report.max_error < 1e-6, "{report:?}");
    // The stop-gradient is real: with the write weightings live, the usage of later steps
    // depends on them in a way the gradient leaves out.
    let live = check_gradients(std::slice::from_ref(interface), loss(true), 1e-6, 400).unwrap();
    assert!(live.max_error > 1e-4, "{live:?}");
    // The interface reaches the loss through every piece: most gradients are far from zero.
    let grads = loss(false)().unwrap().backward().unwrap();
    let g: Vec<f64> = grads
        .get(interface.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let nonzero = g.iter().filter(|x| x.abs() > 1e-6).count();
    assert!(nonzero > g.len() / 2, "{nonzero} of {}", g.len());
}
