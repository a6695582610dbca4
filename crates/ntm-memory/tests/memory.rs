//! Read and write invariants (proptest), gradient checks in f64, and the memory's error paths.

use candle_core::{DType, Device, Tensor, Var};
use ntm_addressing::gradcheck::check_gradients;
use ntm_memory::{
    read, write, Memory, MemoryError, MemoryInit, NtmMemory, NtmMemoryConfig, NtmMemoryState,
};
use ntm_params::Params;
use proptest::prelude::*;

fn t(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).unwrap()
}

fn one_hot(b: usize, n: usize, at: usize) -> Tensor {
    let mut v = vec![0f32; b * n];
    for bi in 0..b {
        v[bi * n + at] = 1.0;
    }
    t(&v, &[b, 1, n])
}

fn memory_case() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>, usize)> {
    (1usize..3, 2usize..12, 1usize..6).prop_flat_map(|(b, n, m)| {
        (
            Just(b),
            Just(n),
            Just(m),
            prop::collection::vec(-3f32..3.0, b * n * m),
            prop::collection::vec(-1f32..1.0, b * m),
            0..n,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn full_erase_clears_exactly_one_row((b, n, m, mem, _add, row) in memory_case()) {
        let memory = t(&mem, &[b, n, m]);
        let erase = Tensor::ones((b, 1, m), DType::F32, &Device::Cpu).unwrap();
        let add = Tensor::zeros((b, 1, m), DType::F32, &Device::Cpu).unwrap();
        let out: Vec<f32> = write(&memory, &one_hot(b, n, row), &erase, &add).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for bi in 0..b {
            for i in 0..n {
                for j in 0..m {
                    let k = (bi * n + i) * m + j;
                    if i == row {
                        prop_assert_eq!(out[k], 0.0);
                    } else {
                        prop_assert_eq!(out[k], mem[k]);
                    }
                }
            }
        }
    }

    #[test]
    fn one_hot_read_returns_that_row((b, n, m, mem, _add, row) in memory_case()) {
        let memory = t(&mem, &[b, n, m]);
        let out: Vec<f32> = read(&memory, &one_hot(b, n, row)).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for bi in 0..b {
            for j in 0..m {
                prop_assert_eq!(out[bi * m + j], mem[(bi * n + row) * m + j]);
            }
        }
    }

    #[test]
    fn writes_touch_nothing_where_the_weighting_is_zero((b, n, m, mem, add, row) in memory_case(), e in 0f32..1.0) {
        let memory = t(&mem, &[b, n, m]);
        let erase = (Tensor::ones((b, 1, m), DType::F32, &Device::Cpu).unwrap() * e as f64).unwrap();
        let out: Vec<f32> = write(&memory, &one_hot(b, n, row), &erase, &t(&add, &[b, 1, m])).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for bi in 0..b {
            for i in (0..n).filter(|&i| i != row) {
                for j in 0..m {
                    let k = (bi * n + i) * m + j;
                    prop_assert_eq!(out[k], mem[k]);
                }
            }
            for j in 0..m {
                let k = (bi * n + row) * m + j;
                let expected = mem[k] * (1.0 - e) + add[bi * m + j];
                prop_assert!((out[k] - expected).abs() < 1e-5);
            }
        }
    }
}

/// Standard normal values in `f32` from the seeded stream `name`: the same on every run.
fn normal(shape: &[usize], name: &str) -> Tensor {
    let values = ntm_params::Init::Normal(1.0).draw(0, name, shape.iter().product());
    Tensor::from_vec(values, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
}

#[test]
fn head_order_does_not_matter_for_writes() {
    let memory = normal(&[2, 6, 3], "memory");
    let w = ntm_addressing::softmax(&normal(&[2, 2, 6], "weights"), 2).unwrap();
    let e = ntm_params::sigmoid(&normal(&[2, 2, 3], "erase")).unwrap();
    let a = normal(&[2, 2, 3], "add");
    let swap = |x: &Tensor| {
        Tensor::cat(&[x.narrow(1, 1, 1).unwrap(), x.narrow(1, 0, 1).unwrap()], 1).unwrap()
    };
    let one = write(&memory, &w, &e, &a).unwrap();
    let two = write(&memory, &swap(&w), &swap(&e), &swap(&a)).unwrap();
    let diff: f32 = (one - two)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(diff < 1e-6, "{diff}");
}

fn var(shape: &[usize], seed: u64) -> Var {
    let values = ntm_params::Init::Uniform(1.0).draw(seed, "test", shape.iter().product());
    Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
}

#[test]
fn write_and_read_gradients_match_finite_differences() {
    let (b, w, n, m) = (2, 2, 5, 3);
    let memory = var(&[b, n, m], 1);
    let logits = var(&[b, w, n], 2);
    let erase = var(&[b, w, m], 3);
    let add = var(&[b, w, m], 4);
    let read_logits = var(&[b, 1, n], 5);
    let proj = var(&[b, 1, m], 6);
    let vars = [
        memory.clone(),
        logits.clone(),
        erase.clone(),
        add.clone(),
        read_logits.clone(),
    ];
    let report = check_gradients(
        &vars,
        || {
            let weights = ntm_addressing::softmax(logits.as_tensor(), 2)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let e = candle_nn_free_sigmoid(erase.as_tensor())?;
            let written = write(memory.as_tensor(), &weights, &e, add.as_tensor())
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let rw = ntm_addressing::softmax(read_logits.as_tensor(), 2)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let r = read(&written, &rw).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            (r * proj.as_tensor())?.sum_all()? + (written.sqr()?.sum_all()? * 0.1)?
        },
        1e-6,
        64,
    )
    .unwrap();
    assert!(report.checked > 40);
    assert!(report.max_error < 1e-6, "{report:?}");
}

fn candle_nn_free_sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

#[test]
fn memory_step_gradients_match_finite_differences() {
    // A whole step, interface activations included, for 2 read and 2 write heads.
    let params = Params::new(3, DType::F64, &Device::Cpu);
    let config = NtmMemoryConfig {
        rows: 6,
        width: 3,
        read_heads: 2,
        write_heads: 2,
        init: MemoryInit::Learned,
        ..Default::default()
    };
    let memory = NtmMemory::new(&params.pp("memory"), &config).unwrap();
    let interface = var(&[2, memory.interface_size()], 7);
    let mut vars: Vec<Var> = params.named_vars().into_iter().map(|(_, v)| v).collect();
    vars.push(interface.clone());
    let report = check_gradients(
        &vars,
        || {
            let run = || -> Result<Tensor, MemoryError> {
                let mut state = memory.initial_state(2)?;
                for _ in 0..3 {
                    state = memory.step(interface.as_tensor(), &state)?;
                }
                Ok((memory.reads(&state).sqr()?.sum_all()? + state.memory()?.sum_all()?)?)
            };
            run().map_err(|e| candle_core::Error::Msg(e.to_string()))
        },
        1e-6,
        24,
    )
    .unwrap();
    assert!(report.max_error < 1e-6, "{report:?}");
}

#[test]
fn bad_configs_and_shapes_are_errors() {
    let params = Params::new(0, DType::F32, &Device::Cpu);
    let zero_heads = NtmMemoryConfig {
        read_heads: 0,
        ..Default::default()
    };
    assert!(matches!(
        NtmMemory::new(&params, &zero_heads),
        Err(MemoryError::Config(_))
    ));
    let wide_shift = NtmMemoryConfig {
        rows: 4,
        shift_range: 2,
        ..Default::default()
    };
    assert!(matches!(
        NtmMemory::new(&params, &wide_shift),
        Err(MemoryError::Config(_))
    ));
    let memory = NtmMemory::new(
        &params,
        &NtmMemoryConfig {
            rows: 8,
            width: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let state = memory.initial_state(2).unwrap();
    let bad = Tensor::zeros((2, memory.interface_size() + 1), DType::F32, &Device::Cpu).unwrap();
    let err = memory.step(&bad, &state).unwrap_err();
    assert!(
        matches!(
            err,
            MemoryError::Shape {
                argument: "interface",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn initial_state_follows_the_init_mode() {
    let dev = Device::Cpu;
    let cfg = |init| NtmMemoryConfig {
        rows: 8,
        width: 4,
        init,
        ..Default::default()
    };
    let constant = NtmMemory::new(
        &Params::new(0, DType::F32, &dev),
        &cfg(MemoryInit::Constant),
    )
    .unwrap();
    let m: Vec<f32> = constant
        .initial_state(1)
        .unwrap()
        .memory()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(m.iter().all(|&x| x == 1e-6));
    let learned_params = Params::new(0, DType::F32, &dev);
    NtmMemory::new(&learned_params, &cfg(MemoryInit::Learned)).unwrap();
    assert!(learned_params
        .names()
        .contains(&"initial_memory".to_string()));
    let random_a =
        NtmMemory::new(&Params::new(5, DType::F32, &dev), &cfg(MemoryInit::Random)).unwrap();
    let random_b =
        NtmMemory::new(&Params::new(5, DType::F32, &dev), &cfg(MemoryInit::Random)).unwrap();
    let a: Vec<f32> = random_a
        .initial_state(1)
        .unwrap()
        .memory()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = random_b
        .initial_state(1)
        .unwrap()
        .memory()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(a, b);
    assert!(a.iter().any(|&x| x.abs() > 0.1));
    // Initial weightings focus on row 0 and are distributions.
    let w: Vec<f32> = constant
        .initial_state(1)
        .unwrap()
        .read_weights()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(w[0] > 0.99 && (w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn fused_write_matches_unfused_values_and_gradients() {
    use ntm_memory::{write_fused, write_unfused};
    for heads in [1, 3] {
        let (b, n, m) = (2, 5, 3);
        let memory = var(&[b, n, m], 21);
        let logits = var(&[b, heads, n], 22);
        let erase = var(&[b, heads, m], 23);
        let add = var(&[b, heads, m], 24);
        let proj = var(&[b, n, m], 25);
        let vars = [memory.clone(), logits.clone(), erase.clone(), add.clone()];
        let loss = |f: fn(&Tensor, &Tensor, &Tensor, &Tensor) -> Result<Tensor, MemoryError>| {
            let msg = |e: MemoryError| candle_core::Error::Msg(e.to_string());
            let w = ntm_addressing::softmax(logits.as_tensor(), 2)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let e = candle_nn_free_sigmoid(erase.as_tensor())?;
            let out = f(memory.as_tensor(), &w, &e, add.as_tensor()).map_err(msg)?;
            (out * proj.as_tensor())?.sum_all()
        };
        let report = check_gradients(&vars, || loss(write_fused), 1e-6, 64).unwrap();
        assert!(report.max_error < 1e-6, "{report:?}");
        let fused = loss(write_fused).unwrap();
        let unfused = loss(write_unfused).unwrap();
        let (gf, gu) = (fused.backward().unwrap(), unfused.backward().unwrap());
        let value_diff: f64 = (fused - unfused)
            .unwrap()
            .abs()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(value_diff < 1e-12, "{value_diff}");
        for v in &vars {
            let d: f64 = (gf.get(v.as_tensor()).unwrap() - gu.get(v.as_tensor()).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(d < 1e-10, "heads {heads}: gradient difference {d}");
        }
    }
}

/// Runs three steps of `step` and returns a scalar touching every output.
fn three_steps(
    memory: &NtmMemory,
    interface: &Var,
    step: impl Fn(
        &NtmMemory,
        &Tensor,
        &ntm_memory::NtmMemoryState,
    ) -> Result<ntm_memory::NtmMemoryState, MemoryError>,
) -> candle_core::Result<Tensor> {
    let run = || -> Result<Tensor, MemoryError> {
        let mut state = memory.initial_state(2)?;
        let proj = var(&[2, memory.read_size()], 31);
        let mut total = Tensor::zeros((), DType::F64, &Device::Cpu)?;
        for t in 0..3 {
            let x = (interface.as_tensor() * (1.0 + t as f64 * 0.3))?;
            state = step(memory, &x, &state)?;
            total = (total + (memory.reads(&state) * proj.as_tensor())?.sum_all()?)?;
            total = (total + (state.weights()?.sqr()?.sum_all()? * 0.5)?)?;
        }
        Ok((total + state.memory()?.sum_all()?)?)
    };
    run().map_err(|e| candle_core::Error::Msg(e.to_string()))
}

/// Fused and unfused steps of `config` agree in value and in the gradient of every variable.
fn assert_steps_agree(config: &NtmMemoryConfig) -> (NtmMemory, Var, Vec<Var>) {
    let params = Params::new(9, DType::F64, &Device::Cpu);
    let memory = NtmMemory::new(&params.pp("memory"), config).unwrap();
    let interface = var(&[2, memory.interface_size()], 17);
    let mut vars: Vec<Var> = params.named_vars().into_iter().map(|(_, v)| v).collect();
    vars.push(interface.clone());
    let fused = three_steps(&memory, &interface, |m, x, s| m.step(x, s)).unwrap();
    let unfused = three_steps(&memory, &interface, |m, x, s| m.step_unfused(x, s)).unwrap();
    let label = format!("{} rows, {} write heads", config.rows, config.write_heads);
    assert_same_values_and_gradients(&fused, &unfused, &vars, &label);
    (memory, interface, vars)
}

/// `fused` and `unfused` have the same value, and the same gradient for each of `vars`.
fn assert_same_values_and_gradients(fused: &Tensor, unfused: &Tensor, vars: &[Var], label: &str) {
    let (a, b): (f64, f64) = (fused.to_scalar().unwrap(), unfused.to_scalar().unwrap());
    assert!(
        (a - b).abs() < 1e-10 * a.abs().max(1.0),
        "{label}: {a} vs {b}"
    );
    let (gf, gu) = (fused.backward().unwrap(), unfused.backward().unwrap());
    for (i, v) in vars.iter().enumerate() {
        let (a, b) = match (gf.get(v.as_tensor()), gu.get(v.as_tensor())) {
            (Some(a), Some(b)) => (a, b),
            (None, None) => continue, // the initial reads do not reach this loss
            (a, b) => panic!(
                "var {i}: fused has a gradient: {}, unfused: {}",
                a.is_some(),
                b.is_some()
            ),
        };
        let scale: f64 = b.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        let d: f64 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(
            d < 1e-9 * scale.max(1.0) && !d.is_nan(),
            "{label}, var {i}: gradient difference {d}"
        );
    }
}

/// The fused step passes the memory's gradient from op to op beside candle's graph; every
/// shape of graph must still get candle's gradients: a state stepped twice, the memory of a
/// state in the middle, a loss that ignores the last steps, a second backward pass.
#[test]
fn the_fused_memory_gradient_follows_any_graph() {
    let config = NtmMemoryConfig {
        rows: 9,
        width: 4,
        read_heads: 2,
        write_heads: 1,
        init: MemoryInit::Learned,
        ..Default::default()
    };
    let params = Params::new(5, DType::F64, &Device::Cpu);
    let memory = NtmMemory::new(&params.pp("memory"), &config).unwrap();
    let x: Vec<Var> = (0..3)
        .map(|k| var(&[2, memory.interface_size()], 40 + k))
        .collect();
    let mut vars: Vec<Var> = params.named_vars().into_iter().map(|(_, v)| v).collect();
    vars.extend(x.iter().cloned());
    type Step<'a> = &'a dyn Fn(&Tensor, &NtmMemoryState) -> Result<NtmMemoryState, MemoryError>;
    type Graph<'a> = &'a dyn Fn(Step<'_>) -> Tensor;
    let graphs: [(&str, Graph<'_>); 3] = [
        ("one state stepped twice", &|step| {
            let s1 = step(x[0].as_tensor(), &memory.initial_state(2).unwrap()).unwrap();
            let a = step(x[1].as_tensor(), &s1).unwrap();
            let b = step(x[2].as_tensor(), &s1).unwrap();
            (a.memory().unwrap().sum_all().unwrap() * 0.7
                + b.memory().unwrap().sqr().unwrap().sum_all().unwrap())
            .unwrap()
        }),
        ("the memory of a middle state", &|step| {
            let s1 = step(x[0].as_tensor(), &memory.initial_state(2).unwrap()).unwrap();
            let s2 = step(x[1].as_tensor(), &s1).unwrap();
            let s3 = step(x[2].as_tensor(), &s2).unwrap();
            let middle = s1.memory().unwrap().sqr().unwrap().sum_all().unwrap();
            (middle + memory.reads(&s3).sum_all().unwrap()).unwrap()
        }),
        ("a loss that ignores the last steps", &|step| {
            let s1 = step(x[0].as_tensor(), &memory.initial_state(2).unwrap()).unwrap();
            let s2 = step(x[1].as_tensor(), &s1).unwrap();
            let _ignored = step(x[2].as_tensor(), &s2).unwrap();
            (memory.reads(&s2).sqr().unwrap().sum_all().unwrap()
                + s2.memory().unwrap().sum_all().unwrap())
            .unwrap()
        }),
    ];
    for (label, graph) in graphs {
        let fused = graph(&|x, s| memory.step(x, s));
        let unfused = graph(&|x, s| memory.step_unfused(x, s));
        assert_same_values_and_gradients(&fused, &unfused, &vars, label);
        // A second pass over the same graph finds nothing left over from the first.
        assert_same_values_and_gradients(&fused, &unfused, &vars, &format!("{label}, again"));
    }
}

#[test]
fn fused_and_unfused_steps_agree_at_the_papers_size_and_at_a_ragged_one() {
    // 128 x 20 fills the kernels' sixteen-lane blocks; 37 rows leave a ragged last block.
    for rows in [128, 37] {
        for write_heads in [1, 3] {
            assert_steps_agree(&NtmMemoryConfig {
                rows,
                width: if rows == 128 { 20 } else { 5 },
                read_heads: 1,
                write_heads,
                init: MemoryInit::Learned,
                ..Default::default()
            });
        }
    }
}

#[test]
fn fused_and_unfused_steps_agree_in_value_and_gradient() {
    let config = NtmMemoryConfig {
        rows: 7,
        width: 3,
        read_heads: 2,
        write_heads: 2,
        init: MemoryInit::Learned,
        ..Default::default()
    };
    let (memory, interface, vars) = assert_steps_agree(&config);

    for step in [true, false] {
        let report = check_gradients(
            &vars,
            || {
                if step {
                    three_steps(&memory, &interface, |m, x, s| m.step(x, s))
                } else {
                    three_steps(&memory, &interface, |m, x, s| m.step_unfused(x, s))
                }
            },
            1e-6,
            16,
        )
        .unwrap();
        assert!(report.max_error < 1e-6, "fused {step}: {report:?}");
    }
}

fn softmax_rows(logits: &Tensor) -> Vec<Vec<f64>> {
    let logits = logits
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    logits
        .iter()
        .map(|row| {
            let max = row.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = row.iter().map(|x| (x - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.iter().map(|x| x / sum).collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A widened memory's heads start where the trained ones did, at the same offsets from row
    /// 0 (circularly), and put no weight on the new rows.
    #[test]
    fn widened_initial_weightings_keep_every_offset_from_row_zero(
        (heads, n, extra, logits) in (1usize..4, 1usize..12, 0usize..20).prop_flat_map(|(h, n, x)| {
            (Just(h), Just(n), Just(x), prop::collection::vec(-12f32..4.0, h * n))
        })
    ) {
        let rows = n + extra;
        let trained = t(&logits, &[heads, n]);
        let widened = ntm_memory::widen_row_logits(&trained, rows).unwrap();
        prop_assert_eq!(widened.dims(), &[heads, rows]);
        let (before, after) = (softmax_rows(&trained), softmax_rows(&widened));
        // Rows 0..=n/2 keep their place; the trained memory's last `back` rows (offsets -1,
        // -2, ..) become the widened memory's last; the rows between are new.
        let back = n - n / 2 - 1;
        for h in 0..heads {
            for (i, w) in after[h].iter().enumerate() {
                let want = if i <= n / 2 {
                    before[h][i]
                } else if i >= rows - back {
                    before[h][i + n - rows]
                } else {
                    0.0
                };
                prop_assert!((w - want).abs() < 1e-6, "head {} row {}: {} vs {}", h, i, w, want);
            }
        }
    }
}

#[test]
fn initial_weightings_do_not_shrink() {
    let trained = t(&[0.0; 8], &[1, 8]);
    let err = ntm_memory::widen_row_logits(&trained, 4).unwrap_err();
    assert!(err.to_string().contains("only grows"), "{err}");
    assert!(ntm_memory::widen_row_logits(&t(&[0.0; 8], &[8]), 16).is_err());
}
