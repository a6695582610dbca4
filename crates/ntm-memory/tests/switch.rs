//! The process-wide kernel switch flipped in the middle of an episode. A test binary of its
//! own: no other test may run while the switch is off.

use candle_core::{DType, Device, Tensor, Var};
use ntm_addressing::gradcheck::max_abs_diff;
use ntm_memory::{Memory, MemoryError, MemoryInit, NtmMemory, NtmMemoryConfig};
use ntm_params::Params;

/// Switches the kernels back on when dropped, even if an assertion fails.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ntm_kernels::set_enabled(true);
    }
}

/// Five steps with the kernels on or off before each step as `fused` says; the loss touches
/// every part of every state, through every accessor.
fn episode(memory: &NtmMemory, interface: &Var, fused: [bool; 5]) -> (f64, Vec<f64>) {
    let run = || -> Result<Tensor, MemoryError> {
        ntm_kernels::set_enabled(fused[0]);
        let mut state = memory.initial_state(2)?;
        let mut total = Tensor::zeros((), DType::F64, &Device::Cpu)?;
        for (t, &on) in fused.iter().enumerate() {
            ntm_kernels::set_enabled(on);
            let x = (interface.as_tensor() * (1.0 + t as f64 * 0.3))?;
            state = memory.step(&x, &state)?;
            let weights = (state.write_weights()?.sum_all()? * 0.25)?
                + state.read_weights()?.sqr()?.sum_all()?;
            total = (total + memory.reads(&state).sum_all()? + weights?)?;
            total = (total + (state.memory()?.sqr()?.sum_all()? * 0.1)?)?;
        }
        let trace = memory.trace(&state);
        assert_eq!(trace.memory.dims(), &[2, 7, 3]);
        assert_eq!(trace.read_weights.dims(), &[2, 2, 7]);
        Ok(total)
    };
    let loss = run().unwrap();
    let grad = loss.backward().unwrap();
    let g: Vec<f64> = grad
        .get(interface.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    (loss.to_scalar().unwrap(), g)
}

#[test]
fn flipping_the_switch_mid_episode_converts_the_state() {
    let _restore = Restore;
    let params = Params::new(4, DType::F64, &Device::Cpu);
    let config = NtmMemoryConfig {
        rows: 7,
        width: 3,
        read_heads: 2,
        write_heads: 2,
        init: MemoryInit::Learned,
        ..Default::default()
    };
    let memory = NtmMemory::new(&params.pp("memory"), &config).unwrap();
    let values = ntm_params::Init::Uniform(1.0).draw(5, "interface", 2 * memory.interface_size());
    let interface = Var::from_tensor(
        &Tensor::from_vec(values, (2, memory.interface_size()), &Device::Cpu).unwrap(),
    )
    .unwrap();

    let fused = episode(&memory, &interface, [true; 5]);
    let unfused = episode(&memory, &interface, [false; 5]);
    assert!(!ntm_kernels::enabled());
    // The two paths are different computations of one function.
    assert_ne!(fused.1, unfused.1);
    for flips in [
        [true, false, true, false, true],
        [false, true, true, false, false],
        [false, false, false, false, true],
    ] {
        let mixed = episode(&memory, &interface, flips);
        assert!(
            (mixed.0 - fused.0).abs() < 1e-10,
            "{flips:?}: {mixed:?} vs {fused:?}"
        );
        let worst = max_abs_diff(&mixed.1, &fused.1);
        assert!(worst < 1e-9, "{flips:?}: gradient differs by {worst}");
    }
}
