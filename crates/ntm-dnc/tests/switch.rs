//! Whole DNC steps with the kernels switched on and off, also in the middle of an episode, and
//! with the links replaced between steps. A test binary of its own: no other test may run
//! while the switch is off.

use candle_core::{DType, Device, Tensor, Var};
use ntm_dnc::{DncConfig, DncMemory};
use ntm_memory::Memory;
use ntm_params::{Init, Params};

/// Switches the kernels back on when dropped, even if an assertion fails.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ntm_kernels::set_enabled(true);
    }
}

const STEPS: usize = 5;

fn fixed(seed: u64, name: &str, shape: &[usize]) -> Tensor {
    let count = shape.iter().product();
    Tensor::from_vec(
        Init::Uniform(1.0).draw(seed, name, count),
        shape,
        &Device::Cpu,
    )
    .unwrap()
}

/// An episode with the kernels on or off before each step as `fused` says; the loss weighs the
/// reads, read weightings, links and precedence of every step. With `halve`, the links are
/// halved before the third step (a state changed by its user). Returns the loss and the
/// gradient of the interface.
fn episode(
    memory: &DncMemory,
    interface: &Var,
    fused: [bool; STEPS],
    halve: bool,
) -> (f64, Vec<f64>) {
    let c = memory.config().clone();
    let b = interface.as_tensor().dim(1).unwrap();
    ntm_kernels::set_enabled(fused[0]);
    let mut state = memory.initial_state(b).unwrap();
    let mut total = Tensor::zeros((), DType::F64, &Device::Cpu).unwrap();
    for (t, &on) in fused.iter().enumerate() {
        ntm_kernels::set_enabled(on);
        if halve && t == 2 {
            state.links = (&state.links * 0.5).unwrap();
        }
        state = memory
            .step(&interface.as_tensor().get(t).unwrap(), &state)
            .unwrap();
        let weigh = |x: &Tensor, name: &str| {
            (x * fixed(t as u64, name, x.dims()))
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let terms = [
            weigh(&memory.reads(&state), "reads"),
            weigh(&state.read_weights, "read weights"),
            weigh(&state.links, "links"),
            weigh(&state.precedence, "precedence"),
        ];
        for term in terms {
            total = (total + term).unwrap();
        }
    }
    assert_eq!(state.links.dims(), &[b, c.write_heads, c.rows, c.rows]);
    let g: Vec<f64> = total
        .backward()
        .unwrap()
        .get(interface.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    (total.to_scalar().unwrap(), g)
}

fn close(a: &(f64, Vec<f64>), b: &(f64, Vec<f64>), what: &str) {
    assert!(
        (a.0 - b.0).abs() <= 1e-10 * b.0.abs().max(1.0),
        "{what}: loss {} vs {}",
        a.0,
        b.0
    );
    let scale = b.1.iter().fold(0f64, |m, x| m.max(x.abs()));
    let diff =
        a.1.iter()
            .zip(&b.1)
            .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff <= 1e-10 * scale,
        "{what}: gradients differ by {diff:e} (scale {scale:e})"
    );
}

#[test]
fn the_fused_and_reference_steps_agree_and_the_switch_may_flip_mid_episode() {
    let _restore = Restore;
    let params = Params::new(0, DType::F64, &Device::Cpu);
    let config = DncConfig {
        rows: 16,
        width: 4,
        read_heads: 2,
        write_heads: 2,
    };
    let memory = DncMemory::new(&params, &config).unwrap();
    let size = memory.interface_size();
    let interface =
        Var::from_tensor(&(fixed(1, "interface", &[STEPS, 2, size]) * 2.0).unwrap()).unwrap();
    let fused = episode(&memory, &interface, [true; STEPS], false);
    let reference = episode(&memory, &interface, [false; STEPS], false);
    assert!(!ntm_kernels::enabled());
    // Two computations of one function: equal to rounding, not bit for bit.
    assert_ne!(fused.1, reference.1);
    assert!(reference.1.iter().filter(|g| g.abs() > 1e-6).count() > reference.1.len() / 2);
    close(&fused, &reference, "fused");
    for flips in [
        [true, false, true, false, true],
        [false, true, true, false, false],
        [false, false, false, true, true],
    ] {
        close(
            &episode(&memory, &interface, flips, false),
            &reference,
            &format!("{flips:?}"),
        );
    }
    // Links replaced by the user between steps are taken up by either path.
    let halved = episode(&memory, &interface, [false; STEPS], true);
    assert!(
        (halved.0 - reference.0).abs() > 1e-6,
        "halving the links changes nothing"
    );
    for flips in [[true; STEPS], [true, true, false, true, true]] {
        close(
            &episode(&memory, &interface, flips, true),
            &halved,
            &format!("halved {flips:?}"),
        );
    }
}
