//! The fused LSTM cell against its composition of candle operations.

use candle_core::{DType, Device, Tensor, Var};
use ntm_addressing::gradcheck::check_gradients;
use ntm_controller::{lstm_cell, lstm_cell_unfused, Controller, Lstm, LstmConfig};
use ntm_params::{Init, Params};

fn draw(shape: (usize, usize), scale: f64, seed: u64, dtype: DType) -> Tensor {
    Params::new(seed, dtype, &Device::Cpu)
        .get(shape, "x", Init::Normal(scale))
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn fused_and_unfused_cells_agree_in_f32() {
    // Large pre-activations too, where the sigmoids and tanh saturate.
    let z = draw((5, 4 * 7), 4.0, 1, DType::F32);
    let c = draw((5, 7), 2.0, 2, DType::F32);
    let (h1, c1) = lstm_cell(&z, &c).unwrap();
    let (h2, c2) = lstm_cell_unfused(&z, &c).unwrap();
    assert_eq!(h1.dims(), &[5, 7]);
    assert_eq!(c1.dims(), &[5, 7]);
    assert!(
        max_diff(&h1, &h2) < 1e-5,
        "h differs by {}",
        max_diff(&h1, &h2)
    );
    assert!(
        max_diff(&c1, &c2) < 1e-5,
        "c differs by {}",
        max_diff(&c1, &c2)
    );
}

/// A scalar loss that uses both outputs with distinct weights, so that every gradient path
/// (through `h`, through `c'`, and into the previous cell state) counts.
fn loss(
    cell: fn(&Tensor, &Tensor) -> ntm_controller::Result<(Tensor, Tensor)>,
    z: &Tensor,
    c: &Tensor,
) -> candle_core::Result<Tensor> {
    let (h, c_next) = cell(z, c).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let wh = Tensor::arange(0f64, h.elem_count() as f64, h.device())?
        .reshape(h.shape())?
        .sin()?;
    let wc = Tensor::arange(0f64, c_next.elem_count() as f64, h.device())?
        .reshape(c_next.shape())?
        .cos()?;
    ((h * wh)?.sum_all()? + (c_next * wc)?.sum_all()?)?.to_dtype(DType::F64)
}

#[test]
fn fused_cell_gradients_match_finite_differences_and_the_unfused_cell() {
    let z = Var::from_tensor(&draw((3, 4 * 5), 1.5, 3, DType::F64)).unwrap();
    let c = Var::from_tensor(&draw((3, 5), 1.0, 4, DType::F64)).unwrap();
    let vars = [z.clone(), c.clone()];
    let report = check_gradients(&vars, || loss(lstm_cell, &z, &c), 1e-6, 64).unwrap();
    assert!(report.max_error < 1e-7, "{report:?}");

    let fused = loss(lstm_cell, &z, &c).unwrap().backward().unwrap();
    let reference = loss(lstm_cell_unfused, &z, &c).unwrap().backward().unwrap();
    for v in &vars {
        let (a, b) = (
            fused.get(v.as_tensor()).unwrap(),
            reference.get(v.as_tensor()).unwrap(),
        );
        assert!(
            max_diff(a, b) < 1e-12,
            "gradient differs by {}",
            max_diff(a, b)
        );
    }
}

#[test]
fn a_strided_cell_state_is_read_correctly() {
    // Every step after the first hands the cell a narrow of the previous output; the first a
    // broadcast of the learned initial state. Both are strided views.
    let params = Params::new(5, DType::F32, &Device::Cpu);
    let lstm = Lstm::new(&params, 3, &LstmConfig { size: 4, layers: 2 }).unwrap();
    let mut state = lstm.initial_state(2).unwrap();
    let x = draw((2, 3), 1.0, 6, DType::F32);
    for _ in 0..3 {
        let c_prev = state.c[0].clone();
        let (_, next) = lstm.step(&x, &state).unwrap();
        // Recompute layer 0's cell from a contiguous copy of the same state.
        let (_, expect) = lstm_cell(
            &layer0_gates(&params, &x, &state),
            &c_prev.contiguous().unwrap(),
        )
        .unwrap();
        assert!(max_diff(&next.c[0], &expect) < 1e-6);
        state = next;
    }
}

/// Layer 0's gate pre-activations, computed from the named parameters.
fn layer0_gates(params: &Params, x: &Tensor, state: &ntm_controller::LstmState) -> Tensor {
    let vars = params.named_vars();
    let get = |name: &str| {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_tensor().clone())
            .unwrap()
    };
    let (w, b) = (get("layer0.gates.weight"), get("layer0.gates.bias"));
    Tensor::cat(&[x, &state.h[0].contiguous().unwrap()], 1)
        .unwrap()
        .matmul(&w.t().unwrap())
        .unwrap()
        .broadcast_add(&b)
        .unwrap()
}
