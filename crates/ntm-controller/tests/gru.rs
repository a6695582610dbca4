//! The GRU controller: shapes, parameters, seeding, gradients and its equations by hand.

use candle_core::{DType, Device, Tensor, Var};
use ntm_addressing::gradcheck::check_gradients;
use ntm_controller::{Controller, ControllerError, Gru, GruConfig, GruState};
use ntm_params::{Init, Params};

fn draw(shape: (usize, usize), scale: f64, seed: u64, dtype: DType) -> Tensor {
    Params::new(seed, dtype, &Device::Cpu)
        .get(shape, "x", Init::Normal(scale))
        .unwrap()
}

/// Overwrites every parameter (biases and initial states included, which start at zero) with
/// normal draws, so that each of them shows in the outputs.
fn randomise(params: &Params, seed: u64, scale: f64) {
    for (name, var) in params.named_vars() {
        let values = Init::Normal(scale).draw(seed, &name, var.elem_count());
        let t = Tensor::from_vec(values, var.shape(), &Device::Cpu)
            .unwrap()
            .to_dtype(var.dtype())
            .unwrap();
        var.set(&t).unwrap();
    }
}

/// The named parameter's values, flattened row-major, in f64.
fn values(params: &Params, name: &str) -> Vec<f64> {
    params
        .named_vars()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
        .1
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Runs `steps` steps on fixed inputs from the initial state and returns every output.
fn run(gru: &Gru, inputs: &[Tensor]) -> Vec<Tensor> {
    let mut state = gru.initial_state(inputs[0].dim(0).unwrap()).unwrap();
    let mut outputs = Vec::new();
    for x in inputs {
        let (out, next) = gru.step(x, &state).unwrap();
        outputs.push(out);
        state = next;
    }
    outputs
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2().unwrap()
}

#[test]
fn outputs_and_states_have_the_documented_shapes() {
    let params = Params::new(0, DType::F32, &Device::Cpu);
    let gru = Gru::new(&params, 5, &GruConfig { size: 8, layers: 3 }).unwrap();
    assert_eq!((gru.input_size(), gru.output_size()), (5, 8));
    let state = gru.initial_state(4).unwrap();
    assert_eq!(state.h.len(), 3);
    for h in &state.h {
        assert_eq!(h.dims(), &[4, 8]);
    }
    let x = draw((4, 5), 1.0, 1, DType::F32);
    let (out, next) = gru.step(&x, &state).unwrap();
    assert_eq!(out.dims(), &[4, 8]);
    assert_eq!(next.h.len(), 3);
    for h in &next.h {
        assert_eq!(h.dims(), &[4, 8]);
    }
    // The output is the top layer's new state.
    assert_eq!(rows(&out), rows(&next.h[2]));
    // A second step from a computed (contiguous) state.
    let (out2, _) = gru.step(&x, &next).unwrap();
    assert_eq!(out2.dims(), &[4, 8]);
}

#[test]
fn parameter_count_and_names_match_the_layout() {
    let params = Params::new(0, DType::F32, &Device::Cpu);
    let (input, size) = (5, 8);
    Gru::new(
        &params.pp("controller"),
        input,
        &GruConfig { size, layers: 2 },
    )
    .unwrap();
    // Layer 0: W [3s, i], b [3s], U [3s, s], c [3s], h0 [s]
    //   = 3*8*5 + 24 + 3*8*8 + 24 + 8 = 120 + 24 + 192 + 24 + 8 = 368.
    // Layer 1: its input is layer 0's h, so i = s:
    //   = 3*8*8 + 24 + 3*8*8 + 24 + 8 = 192 + 24 + 192 + 24 + 8 = 440.
    assert_eq!(params.param_count(), 368 + 440);
    let per_layer = |i: usize| 3 * size * i + 3 * size + 3 * size * size + 3 * size + size;
    assert_eq!(params.param_count(), per_layer(input) + per_layer(size));
    let mut expected = Vec::new();
    for l in 0..2 {
        for name in [
            "h0",
            "hidden.bias",
            "hidden.weight",
            "input.bias",
            "input.weight",
        ] {
            expected.push(format!("controller.layer{l}.{name}"));
        }
    }
    assert_eq!(params.names(), expected);
}

#[test]
fn the_same_seed_gives_the_same_outputs_and_another_seed_others() {
    let config = GruConfig { size: 6, layers: 2 };
    let inputs: Vec<Tensor> = (0..3)
        .map(|t| draw((2, 4), 1.0, 10 + t, DType::F32))
        .collect();
    let outputs = |seed: u64| -> Vec<Vec<Vec<f64>>> {
        let params = Params::new(seed, DType::F32, &Device::Cpu);
        let gru = Gru::new(&params, 4, &config).unwrap();
        run(&gru, &inputs).iter().map(rows).collect()
    };
    let (a, b, c) = (outputs(3), outputs(3), outputs(4));
    assert_eq!(a, b);
    for (x, y) in a.iter().zip(&c) {
        assert_ne!(x, y);
    }
}

#[test]
fn gradients_of_a_two_layer_gru_match_finite_differences() {
    let params = Params::new(7, DType::F64, &Device::Cpu);
    let gru = Gru::new(&params, 3, &GruConfig { size: 4, layers: 2 }).unwrap();
    randomise(&params, 8, 0.6);
    let inputs: Vec<Var> = (0..3)
        .map(|t| Var::from_tensor(&draw((2, 3), 1.0, 20 + t, DType::F64)).unwrap())
        .collect();
    let loss = || -> candle_core::Result<Tensor> {
        let mut state = gru
            .initial_state(2)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut total = Tensor::zeros((), DType::F64, &Device::Cpu)?;
        for (t, x) in inputs.iter().enumerate() {
            let (out, next) = gru
                .step(x.as_tensor(), &state)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            // Distinct weights per step and element, so no two gradient paths cancel.
            let w = (Tensor::arange(0f64, out.elem_count() as f64, &Device::Cpu)?
                .reshape(out.shape())?
                + 1.7 * t as f64)?
                .sin()?;
            total = (total + (out * w)?.sum_all()?)?;
            state = next;
        }
        Ok(total)
    };
    let mut vars: Vec<Var> = params.named_vars().into_iter().map(|(_, v)| v).collect();
    let param_elements: usize = vars.iter().map(|v| v.elem_count()).sum();
    vars.extend(inputs.iter().cloned());
    let report = check_gradients(&vars, loss, 1e-6, usize::MAX).unwrap();
    // Every element of every parameter (and of the inputs) was probed.
    assert_eq!(report.checked, param_elements + 3 * 2 * 3, "{report:?}");
    assert!(report.max_error < 1e-7, "{report:?}");

    // And every parameter matters: none has an all-zero gradient.
    let grads = loss().unwrap().backward().unwrap();
    for (name, var) in params.named_vars() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(norm > 1e-6, "{name} has gradient norm {norm}");
    }
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// One step of the GRU written out element by element from the named parameters:
/// `r = sigmoid(W_r x + b_r + U_r h + c_r)`, `z = sigmoid(W_z x + b_z + U_z h + c_z)`,
/// `n = tanh(W_n x + b_n + r (U_n h + c_n))`, `h' = (1 - z) n + z h`, for one sequence.
fn step_by_hand(params: &Params, layers: usize, x: &[f64], h: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut x = x.to_vec();
    let mut next = Vec::new();
    for (l, h) in h.iter().enumerate().take(layers) {
        let s = h.len();
        let w = values(params, &format!("layer{l}.input.weight")); // [3s, in]
        let b = values(params, &format!("layer{l}.input.bias"));
        let u = values(params, &format!("layer{l}.hidden.weight")); // [3s, s]
        let c = values(params, &format!("layer{l}.hidden.bias"));
        let width = x.len();
        // Row `row` of W x + b, and of U h + c.
        let wx = |row: usize| b[row] + (0..width).map(|k| w[row * width + k] * x[k]).sum::<f64>();
        let uh = |row: usize| c[row] + (0..s).map(|k| u[row * s + k] * h[k]).sum::<f64>();
        let new: Vec<f64> = (0..s)
            .map(|j| {
                let r = sigmoid(wx(j) + uh(j));
                let z = sigmoid(wx(s + j) + uh(s + j));
                let n = (wx(2 * s + j) + r * uh(2 * s + j)).tanh();
                (1.0 - z) * n + z * h[j]
            })
            .collect();
        x = new.clone();
        next.push(new);
    }
    next
}

#[test]
fn steps_follow_the_gru_equations_computed_by_hand() {
    // A one-unit GRU, where each gate is one row, and wider stacked ones.
    for (seed, input, size, layers) in [(30, 2, 1, 1), (31, 2, 3, 1), (32, 3, 2, 2)] {
        let params = Params::new(seed, DType::F64, &Device::Cpu);
        let gru = Gru::new(&params, input, &GruConfig { size, layers }).unwrap();
        randomise(&params, seed + 100, 0.8);
        let batch = 2;
        let mut state = gru.initial_state(batch).unwrap();
        // Per sequence, the hand-computed state, starting from the learned h0.
        let mut expected: Vec<Vec<Vec<f64>>> = (0..batch)
            .map(|_| {
                (0..layers)
                    .map(|l| values(&params, &format!("layer{l}.h0")))
                    .collect()
            })
            .collect();
        for t in 0..2 {
            let x = draw((batch, input), 1.0, seed * 10 + t, DType::F64);
            let (out, next) = gru.step(&x, &state).unwrap();
            let xs = rows(&x);
            for (row, seq) in expected.iter_mut().enumerate() {
                *seq = step_by_hand(&params, layers, &xs[row], seq);
                assert_eq!(seq.len(), layers);
                for (l, (h, want)) in next.h.iter().zip(seq.iter()).enumerate() {
                    let got = &rows(h)[row];
                    assert_eq!(got.len(), want.len());
                    for (g, e) in got.iter().zip(want) {
                        assert!(
                            (g - e).abs() < 1e-12,
                            "size {size}, step {t}, layer {l}: {got:?} vs {want:?}"
                        );
                    }
                }
                assert_eq!(rows(&out)[row], rows(&next.h[layers - 1])[row]);
            }
            state = next;
        }
    }
}

#[test]
fn the_update_gate_chooses_between_the_old_state_and_the_candidate() {
    let params = Params::new(40, DType::F64, &Device::Cpu);
    let size = 3;
    let gru = Gru::new(&params, 2, &GruConfig { size, layers: 1 }).unwrap();
    randomise(&params, 41, 0.8);
    let x = draw((2, 2), 1.0, 42, DType::F64);
    let state = gru.initial_state(2).unwrap();
    let h0 = rows(&state.h[0]);
    let set_update_bias = |value: f64| {
        let (_, var) = params
            .named_vars()
            .into_iter()
            .find(|(n, _)| n == "layer0.hidden.bias")
            .unwrap();
        let mut c = var.as_tensor().to_vec1::<f64>().unwrap();
        c[size..2 * size].fill(value);
        var.set(&Tensor::new(c, &Device::Cpu).unwrap()).unwrap();
    };
    // z = 1 keeps the state.
    set_update_bias(60.0);
    let (kept, _) = gru.step(&x, &state).unwrap();
    for (a, b) in rows(&kept).iter().flatten().zip(h0.iter().flatten()) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    // z = 0 replaces it with the candidate tanh(W_n x + b_n + r (U_n h + c_n)), in (-1, 1).
    set_update_bias(-60.0);
    let (replaced, _) = gru.step(&x, &state).unwrap();
    let expect: Vec<f64> = rows(&x)
        .iter()
        .flat_map(|xr| step_by_hand(&params, 1, xr, &[h0[0].clone()]).remove(0))
        .collect();
    for (a, b) in rows(&replaced).iter().flatten().zip(&expect) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        assert!(a.abs() < 1.0);
    }
}

#[test]
fn a_wrong_input_width_is_an_error() {
    let params = Params::new(0, DType::F32, &Device::Cpu);
    let gru = Gru::new(&params, 3, &GruConfig { size: 4, layers: 2 }).unwrap();
    let state = gru.initial_state(2).unwrap();
    let wide = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        gru.step(&wide, &state),
        Err(ControllerError::InputShape { ref got, expected: 3 }) if got == &[2, 4]
    ));
    let flat = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        gru.step(&flat, &state),
        Err(ControllerError::InputShape { .. })
    ));
}

#[test]
fn a_state_that_does_not_fit_the_controller_is_an_error() {
    let params = Params::new(0, DType::F32, &Device::Cpu);
    let gru = Gru::new(&params.pp("a"), 3, &GruConfig { size: 4, layers: 2 }).unwrap();
    let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let other = |size: usize, layers: usize| -> GruState {
        Gru::new(
            &params.pp(&format!("b{size}x{layers}")),
            3,
            &GruConfig { size, layers },
        )
        .unwrap()
        .initial_state(2)
        .unwrap()
    };
    // Fewer and more layers than the controller.
    for layers in [1, 3] {
        let err = gru.step(&x, &other(4, layers)).unwrap_err();
        assert!(matches!(err, ControllerError::Config(_)), "{err}");
        assert!(err.to_string().contains("layers"), "{err}");
    }
    // The right number of layers with the wrong width, or another batch size.
    assert!(matches!(
        gru.step(&x, &other(5, 2)),
        Err(ControllerError::Config(_))
    ));
    let three = gru.initial_state(3).unwrap();
    assert!(matches!(
        gru.step(&x, &three),
        Err(ControllerError::Config(_))
    ));
    // An empty state.
    assert!(gru.step(&x, &GruState { h: Vec::new() }).is_err());
}

#[test]
fn zero_sizes_are_config_errors() {
    let params = Params::new(0, DType::F32, &Device::Cpu);
    for (input, size, layers) in [(0, 4, 1), (3, 0, 1), (3, 4, 0)] {
        assert!(matches!(
            Gru::new(&params, input, &GruConfig { size, layers }),
            Err(ControllerError::Config(_))
        ));
    }
    assert_eq!(params.param_count(), 0);
    assert_eq!(
        GruConfig::default(),
        GruConfig {
            size: 100,
            layers: 1
        }
    );
}
