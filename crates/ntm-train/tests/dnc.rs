//! The DNC memory trains end to end: an LSTM-DNC's loss on copy falls within a short run.

use candle_core::Device;
use ntm_train::{RunConfig, Trainer};

/// Mean training loss (bits per sequence) of the first and of the last `window` updates of a
/// short copy run of a small LSTM-DNC with learning rate `lr`.
fn copy_run(lr: f64, updates: usize, window: usize) -> (f64, f64) {
    let sets: Vec<String> = [
        "model.controller.size=32",
        "model.memory.rows=8",
        "model.memory.width=8",
        "task.min_length=4",
        "task.max_length=4",
        "train.batch_size=8",
        "train.optimizer.kind=adam",
        "train.val_sequences=1",
        "train.val_batch=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("train.optimizer.lr={lr}")])
    .collect();
    let config = RunConfig::resolve(Some("copy"), Some("lstm-dnc"), None, &sets).unwrap();
    assert_eq!(config.model_name(), "lstm-dnc");
    let mut trainer = Trainer::new(config, &Device::Cpu).unwrap();
    let losses: Vec<f64> = (0..updates)
        .map(|_| trainer.step().unwrap().loss_bits)
        .collect();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    (mean(&losses[..window]), mean(&losses[updates - window..]))
}

#[test]
fn an_lstm_dnc_learns_to_copy_and_does_not_without_updates() {
    // Four 8-bit vectors: 32 scored bits, 32 bits of cross-entropy at chance.
    let (first, last) = copy_run(1e-2, 400, 20);
    assert!(first > 28.0, "starts near chance: {first}");
    assert!(last < 0.5 * first, "learns: {first} -> {last}");
    // The same batches with updates too small to matter (a learning rate of 0 is rejected by
    // the config): the loss at the end is still near chance, so the fall above is learning.
    let (first0, last0) = copy_run(1e-12, 400, 20);
    assert!(last0 > 0.9 * first0, "no learning: {first0} -> {last0}");
}
