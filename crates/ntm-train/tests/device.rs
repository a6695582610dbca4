//! The model on the device named by `NTM_TEST_DEVICE` (`cpu`, the default, or `cuda` /
//! `cuda:N` in a build with the `cuda` feature) against the CPU's fused kernels, in value and
//! gradient, at the paper's sizes. The device runs the reference composition of candle
//! operations (the path every device but the CPU takes), so on the CPU this compares the two
//! paths in `f32`; on a GPU it compares the GPU with the CPU.
//!
//! ```sh
//! NTM_TEST_DEVICE=cuda cargo test --release --features cuda -p ntm-train --test device
//! ```

use candle_core::{DType, Device, Tensor};
use ntm_train::{masked_bce, to_tensor, RunConfig, Trainer};

/// The device to test, or `None` (said on stderr) when it is not there.
fn device_under_test() -> Option<Device> {
    let name = std::env::var("NTM_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    if name == "cpu" {
        return Some(Device::Cpu);
    }
    let ordinal = match name.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("NTM_TEST_DEVICE={name}: expected cpu, cuda or cuda:N")),
        None => panic!("NTM_TEST_DEVICE={name}: expected cpu, cuda or cuda:N"),
    };
    if !cfg!(feature = "cuda") {
        eprintln!("SKIPPED: NTM_TEST_DEVICE={name} needs a build with --features cuda");
        return None;
    }
    match Device::new_cuda(ordinal) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: NTM_TEST_DEVICE={name}, but no usable GPU: {e}");
            None
        }
    }
}

/// The paper's copy model (LSTM 100, memory 128 x 20) and one batch of length-20 sequences.
fn paper_copy() -> RunConfig {
    let sets = [
        "task.min_length=20",
        "task.max_length=20",
        "train.batch_size=4",
    ]
    .map(String::from);
    RunConfig::resolve(Some("copy"), Some("lstm-ntm"), None, &sets).unwrap()
}

/// The loss of one batch and the gradient of every parameter, flattened, on `device`.
fn loss_and_gradients(config: &RunConfig, device: &Device) -> (f64, Vec<Vec<f32>>) {
    let registry = ntm_train::Registry::default();
    let (task, model) = registry.build(config, device).unwrap();
    let batch = ntm_train::make_batches(task.as_ref(), 4, 4, None, 3, "device").unwrap();
    let batch = &batch[0];
    let logits = model
        .forward(&to_tensor(&batch.inputs, device).unwrap())
        .unwrap();
    let loss = masked_bce(
        &logits,
        &to_tensor(&batch.targets, device).unwrap(),
        &to_tensor(&batch.mask, device).unwrap(),
    )
    .unwrap();
    let grads = loss.backward().unwrap();
    let flat = |t: &Tensor| -> Vec<f32> {
        t.to_device(&Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let gradients = model
        .params()
        .named_vars()
        .iter()
        .map(|(_, v)| flat(grads.get(v.as_tensor()).unwrap()))
        .collect();
    let loss = loss
        .to_dtype(DType::F64)
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap()
        .to_scalar()
        .unwrap();
    (loss, gradients)
}

#[test]
fn the_device_matches_the_cpu_kernels_in_value_and_gradient_at_the_papers_size() {
    let Some(device) = device_under_test() else {
        return;
    };
    let config = paper_copy();
    ntm::kernels::set_enabled(true);
    let (cpu_loss, cpu_grads) = loss_and_gradients(&config, &Device::Cpu);
    ntm::kernels::set_enabled(false);
    let (dev_loss, dev_grads) = loss_and_gradients(&config, &device);
    ntm::kernels::set_enabled(true);

    assert!(
        (cpu_loss - dev_loss).abs() <= 1e-4 * cpu_loss.abs(),
        "loss {cpu_loss} on the CPU, {dev_loss} on the device"
    );
    assert_eq!(cpu_grads.len(), dev_grads.len());
    let mut differs = false;
    for (i, (a, b)) in cpu_grads.iter().zip(&dev_grads).enumerate() {
        let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| {
            if (x - y).abs() > m || (x - y).is_nan() {
                (x - y).abs()
            } else {
                m
            }
        });
        differs |= worst > 0.0;
        assert!(
            worst <= 1e-3 * scale + 1e-6 && !worst.is_nan(),
            "parameter {i}: gradients differ by {worst} (largest {scale})"
        );
    }
    // Two different computations ran: they agree to rounding, not to the last bit.
    assert!(
        differs,
        "the device and the CPU kernels gave identical gradients"
    );

    // And a whole training step runs there, with finite results.
    let mut trainer = Trainer::new(config, &device).unwrap();
    let stats = trainer.step().unwrap();
    assert!(
        stats.loss_bits.is_finite() && stats.grad_norm.is_finite(),
        "{stats:?}"
    );
}
