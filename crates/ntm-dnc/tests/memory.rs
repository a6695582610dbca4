//! The memory as a whole: configuration errors, zero rows, weightings, the trace and the
//! registry entry.

use candle_core::{DType, Device, Tensor, Var};
use ntm_dnc::{memory_config, memory_kind, DncConfig, DncError, DncMemory, DncState};
use ntm_memory::{Memory, MemoryError, MemoryRegistry};
use ntm_params::{Init, Params};

fn config(rows: usize, width: usize, read_heads: usize, write_heads: usize) -> DncConfig {
    DncConfig {
        rows,
        width,
        read_heads,
        write_heads,
    }
}

fn values(x: &Tensor) -> Vec<f64> {
    x.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn interface(memory: &DncMemory, steps: usize, batch: usize, scale: f64, dtype: DType) -> Var {
    let size = memory.interface_size();
    let v: Vec<f64> = Init::Uniform(scale).draw(3, "interface", steps * batch * size);
    let t = Tensor::from_vec(v, (steps, batch, size), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    Var::from_tensor(&t).unwrap()
}

#[test]
fn bad_configs_name_the_option() {
    let params = Params::new(0, DType::F32, &Device::Cpu);
    for (bad, option) in [
        (config(0, 4, 1, 1), "rows"),
        (config(8, 0, 1, 1), "width"),
        (config(8, 4, 0, 1), "read_heads"),
        (config(8, 4, 1, 0), "write_heads"),
        (config(5000, 4, 1, 1), "rows"),
    ] {
        match DncMemory::new(&params, &bad) {
            Err(DncError::Config { option: o, .. }) => assert_eq!(o, option),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert!(DncMemory::new(&params, &config(1, 1, 1, 1)).is_ok());
    // Through the registry, a typo and a bad value are errors that say what is wrong.
    let mut registry = MemoryRegistry::default();
    registry.register(memory_kind()).unwrap();
    let mut c = memory_config(&config(8, 4, 1, 1)).unwrap();
    c.options.insert("rowz".into(), toml::Value::Integer(3));
    let err = registry.build(&params, &c).unwrap_err().to_string();
    assert!(err.contains("rowz"), "{err}");
    let c = memory_config(&config(8, 4, 1, 0)).unwrap();
    let err = registry.build(&params, &c).unwrap_err().to_string();
    assert!(err.contains("write_heads"), "{err}");
    assert!(registry.register(memory_kind()).is_err());
}

#[test]
fn a_wrong_interface_is_a_shape_error() {
    let params = Params::new(0, DType::F32, &Device::Cpu);
    let memory = DncMemory::new(&params, &config(8, 4, 2, 1)).unwrap();
    let state = memory.initial_state(2).unwrap();
    for dims in [
        (2, memory.interface_size() + 1),
        (3, memory.interface_size()),
    ] {
        let bad = Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(
            memory.step(&bad, &state),
            Err(MemoryError::Shape {
                argument: "interface",
                ..
            })
        ));
    }
}

#[test]
fn all_zero_rows_give_finite_values_and_moderate_gradients() {
    // Fresh memory is all zero, and writes through allocation (gate nearly 1) fill one row per
    // step and write head, so after three steps some rows are still (nearly) zero. Content
    // lookups against them must give finite values and gradients of a sane size.
    let params = Params::new(0, DType::F64, &Device::Cpu);
    let c = config(8, 4, 2, 2);
    let memory = DncMemory::new(&params, &c).unwrap();
    let (steps, batch, size) = (3, 2, memory.interface_size());
    let mut raw: Vec<f64> = Init::Uniform(3.0).draw(3, "interface", steps * batch * size);
    let (w, r, wh) = (c.width, c.read_heads, c.write_heads);
    let allocation_gates = r * w + r + wh * w + wh + 2 * wh * w + r;
    for row in raw.chunks_mut(size) {
        for gate in &mut row[allocation_gates..allocation_gates + wh] {
            *gate = 12.0;
        }
    }
    let x = Var::from_tensor(&Tensor::from_vec(raw, (steps, batch, size), &Device::Cpu).unwrap())
        .unwrap();
    let mut state = memory.initial_state(batch).unwrap();
    let mut loss = Tensor::zeros((), DType::F64, &Device::Cpu).unwrap();
    for t in 0..steps {
        state = memory.step(&x.as_tensor().get(t).unwrap(), &state).unwrap();
        let proj = Tensor::from_vec(
            Init::Uniform(1.0).draw(t as u64, "proj", batch * memory.read_size()),
            (batch, memory.read_size()),
            &Device::Cpu,
        )
        .unwrap();
        loss = (loss + (memory.reads(&state) * proj).unwrap().sum_all().unwrap()).unwrap();
    }
    let near_zero_rows = values(&state.memory.sqr().unwrap().sum(2).unwrap())
        .iter()
        .filter(|&&s| s < 1e-8)
        .count();
    assert!(near_zero_rows >= 4, "only {near_zero_rows} near-zero rows");
    for t in [
        &state.memory,
        &state.reads,
        &state.read_weights,
        &state.usage,
        &state.links,
    ] {
        assert!(values(t).iter().all(|v| v.is_finite()));
    }
    let grads = loss.backward().unwrap();
    let g = values(grads.get(x.as_tensor()).unwrap());
    assert!(g.iter().all(|v| v.is_finite()));
    let largest = g.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(
        largest > 1e-3 && largest < 1e3,
        "largest gradient {largest}"
    );
}

#[test]
fn an_all_zero_row_has_a_bounded_gradient_and_a_nearly_empty_row_does_not_win_a_lookup() {
    let dev = Device::Cpu;
    let key = Tensor::new(&[[[0.5f64, -1.0, 2.0]]], &dev).unwrap();
    let strength = Tensor::new(&[[3f64]], &dev).unwrap();
    // Row 0 is all zero; row 1 is written.
    let memory = Var::new(&[[[0f64, 0., 0.], [1., 0.5, 0.3]]], &dev).unwrap();
    let w = ntm_dnc::content(memory.as_tensor(), &key, &strength).unwrap();
    let weight = Tensor::new(&[[[1f64, 0.]]], &dev).unwrap();
    let grads = (w * weight).unwrap().sum_all().unwrap().backward().unwrap();
    let g = values(grads.get(memory.as_tensor()).unwrap());
    assert!(g.iter().all(|v| v.is_finite()));
    let largest = g.iter().fold(0f64, |m, v| m.max(v.abs()));
    // With the NTM's epsilon of 1e-8 this is about 4e7.
    assert!(largest < 1e4, "largest gradient {largest}");
    // Row 0 holds the key's direction at 1e-6 (the tail of an allocation); row 1 a moderate match.
    let tail = (key.get(0).unwrap() * 1e-6).unwrap();
    let moderate = Tensor::new(&[[0.5f64, 0.0, 2.0]], &dev).unwrap();
    let memory = Tensor::cat(&[tail, moderate], 0)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let w = values(&ntm_dnc::content(&memory, &key, &strength).unwrap());
    assert!(w[1] > w[0], "{w:?}");
}

#[test]
fn weightings_are_sub_distributions_and_usage_stays_in_range() {
    let params = Params::new(0, DType::F32, &Device::Cpu);
    let c = config(10, 4, 3, 2);
    let memory = DncMemory::new(&params, &c).unwrap();
    let (steps, batch) = (12, 3);
    let x = interface(&memory, steps, batch, 4.0, DType::F32);
    let mut state = memory.initial_state(batch).unwrap();
    for t in 0..steps {
        state = memory.step(&x.as_tensor().get(t).unwrap(), &state).unwrap();
        for (w, heads) in [
            (&state.read_weights, 3),
            (&state.write_weights, 2),
            (&state.allocation, 2),
        ] {
            let v = values(w);
            assert!(v.iter().all(|&x| x >= 0.0), "{v:?}");
            for row in v.chunks(c.rows) {
                assert!(row.iter().sum::<f64>() <= 1.0 + 1e-5, "{row:?}");
            }
            assert_eq!(v.len(), batch * heads * c.rows);
        }
        assert!(values(&state.usage)
            .iter()
            .all(|&u| (0.0..=1.0).contains(&u)));
        let modes = values(&state.read_modes);
        for m in modes.chunks(c.read_modes()) {
            assert!((m.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        }
    }
    // Twelve steps of gated writes leave some usage behind.
    assert!(values(&state.usage).iter().any(|&u| u > 0.1));
}

#[test]
fn trace_shows_usage_allocation_links_and_read_modes() {
    let params = Params::new(0, DType::F32, &Device::Cpu);
    let c = config(6, 3, 2, 2);
    let memory = DncMemory::new(&params, &c).unwrap();
    let x = interface(&memory, 1, 4, 1.0, DType::F32);
    let state = memory
        .step(
            &x.as_tensor().get(0).unwrap(),
            &memory.initial_state(4).unwrap(),
        )
        .unwrap();
    let trace = memory.trace(&state);
    assert_eq!(trace.memory.dims(), &[4, 6, 3]);
    assert_eq!(trace.read_weights.dims(), &[4, 2, 6]);
    assert_eq!(trace.write_weights.dims(), &[4, 2, 6]);
    let shapes: Vec<(&str, Vec<usize>)> = trace
        .extra
        .iter()
        .map(|(name, t)| (name.as_str(), t.dims().to_vec()))
        .collect();
    assert_eq!(
        shapes,
        vec![
            ("usage", vec![4, 6]),
            ("allocation", vec![4, 2, 6]),
            ("links", vec![4, 2, 6, 6]),
            ("read modes", vec![4, 2, 5]),
        ]
    );
    assert!(trace.extra.iter().all(|(_, t)| !t.track_op()));
}

#[test]
fn batch_elements_do_not_interact() {
    let params = Params::new(0, DType::F64, &Device::Cpu);
    let memory = DncMemory::new(&params, &config(7, 3, 2, 2)).unwrap();
    let x = interface(&memory, 5, 3, 3.0, DType::F64);
    let run = |x: &Tensor| {
        let mut state: DncState = memory.initial_state(x.dim(1).unwrap()).unwrap();
        for t in 0..x.dim(0).unwrap() {
            state = memory.step(&x.get(t).unwrap(), &state).unwrap();
        }
        state.reads
    };
    let all = values(&run(x.as_tensor()).get(1).unwrap());
    let alone = values(&run(&x.as_tensor().narrow(1, 1, 1).unwrap()));
    assert_eq!(all.len(), alone.len());
    for (a, b) in all.iter().zip(&alone) {
        assert!((a - b).abs() < 1e-12, "{all:?} vs {alone:?}");
    }
}
