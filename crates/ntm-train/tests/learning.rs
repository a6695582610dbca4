//! Training learns: a small LSTM-NTM trained on copy with sequences of one or two vectors
//! lowers its loss clearly within a few hundred updates, and the same run with the gradient
//! zeroed does not, so the check tells learning from its absence.

use candle_core::Device;
use ntm_train::{OptimizerConfig, RunConfig, Trainer};

/// Updates per run.
const STEPS: usize = 400;
/// Updates averaged at each end of a run.
const WINDOW: usize = 50;
/// A clear fall: the last window's mean loss below this fraction of the first window's. Over
/// seeds 0 to 4 the learning run ends at 0.34 to 0.46 of its start (from 10 to 12 bits per
/// sequence, about the cost of guessing, to 4 or 5); the run without a gradient at 0.89 to 1.09,
/// the spread of the batches' lengths.
const CLEAR_FALL: f64 = 0.6;

fn config(zero_gradient: bool) -> RunConfig {
    let sets = [
        "seed=0",
        "model.controller.size=16",
        "model.memory.rows=16",
        "model.memory.width=8",
        "task.min_length=1",
        "task.max_length=2",
        "train.batch_size=8",
        "train.val_sequences=8",
        "train.val_batch=8",
    ]
    .map(String::from);
    let mut config = RunConfig::resolve(Some("copy"), Some("lstm-ntm"), None, &sets).unwrap();
    config.train.optimizer = OptimizerConfig::Adam {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    if zero_gradient {
        // The trainer clips every gradient component to +-clip_value before the update (0 turns
        // clipping off); this bound is 0 in the model's f32, so the optimiser sees a gradient of
        // exactly zero. Everything else, batches included, is the same run.
        config.train.clip_value = f64::MIN_POSITIVE;
    }
    config
}

/// Trains for `STEPS` updates; the loss of each batch (bits per sequence) and the parameters
/// before and after.
fn train(config: RunConfig) -> (Vec<f64>, Vec<f32>, Vec<f32>) {
    let mut trainer = Trainer::new(config, &Device::Cpu).unwrap();
    let params = |t: &Trainer| -> Vec<f32> {
        let mut vars = t.model().params().named_vars();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars.iter()
            .flat_map(|(_, v)| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    };
    let before = params(&trainer);
    let losses = (0..STEPS)
        .map(|_| trainer.step().unwrap().loss_bits)
        .collect();
    (losses, before, params(&trainer))
}

/// The last window's mean loss over the first window's.
fn fall(losses: &[f64]) -> f64 {
    let mean = |w: &[f64]| w.iter().sum::<f64>() / w.len() as f64;
    mean(&losses[losses.len() - WINDOW..]) / mean(&losses[..WINDOW])
}

#[test]
fn training_on_copy_lowers_the_loss_clearly() {
    let (losses, before, after) = train(config(false));
    assert!(losses.iter().all(|l| l.is_finite()));
    assert_ne!(before, after);
    let fall = fall(&losses);
    assert!(
        fall < CLEAR_FALL,
        "the loss fell only to {fall:.3} of its start: {:?} ... {:?}",
        &losses[..5],
        &losses[STEPS - 5..]
    );
}

#[test]
fn without_a_gradient_the_same_check_fails() {
    let (losses, before, after) = train(config(true));
    // The control is what it claims: no parameter moved.
    assert_eq!(before, after);
    let fall = fall(&losses);
    assert!(
        fall >= CLEAR_FALL,
        "the loss fell to {fall:.3} of its start without a gradient"
    );
}
