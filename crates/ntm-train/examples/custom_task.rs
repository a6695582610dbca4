//! A task of your own, trained through the library: reverse copy (read a sequence of random
//! bit vectors, then write it back last vector first) on the LSTM NTM, with checkpoints and an
//! exact resume.
//!
//! `cargo run --release -p ntm-train --example custom_task` trains it to under 0.1 bit errors
//! per sequence and writes the run to `runs/reverse-copy`.

use candle_core::{DType, Device};
use ntm::ModelConfig;
use ntm_tasks::rand::{Rng, RngCore};
use ntm_tasks::{random_bits, Batch, CostKind, Size, Task, TaskError};
use ntm_train::{Quiet, RunParts, Summary, TrainConfig, TrainError, Trainer};

/// Reverse copy: `L` vectors of `W` bits (`L` up to 10), a delimiter, then the vectors last
/// first.
struct ReverseCopy;
const W: usize = 8;

impl Task for ReverseCopy {
    fn name(&self) -> &'static str {
        "reverse-copy"
    }
    fn input_size(&self) -> usize {
        W + 1 // the last channel is the delimiter
    }
    fn output_size(&self) -> usize {
        W
    }
    fn cost_kind(&self) -> CostKind {
        CostKind::BitErrors
    }
    fn batch(
        &self,
        size: usize,
        at: Option<Size>,
        rng: &mut dyn RngCore,
    ) -> Result<Batch, TaskError> {
        let length = match at {
            Some(s) => s.length(),
            None => rng.random_range(1..=10),
        };
        let mut batch = Batch::zeros(self.name(), 2 * length + 1, size, W + 1, W)?;
        for b in 0..size {
            for t in 0..length {
                let bits = &mut batch.inputs.row_mut(t, b)[..W];
                random_bits(rng, bits);
                let bits = bits.to_vec();
                batch
                    .targets
                    .row_mut(2 * length - t, b)
                    .copy_from_slice(&bits);
            }
            batch.inputs.set(length, b, W, 1.0);
        }
        batch.mask_steps(length + 1..2 * length + 1);
        Ok(batch)
    }
}

/// The task and a fresh LSTM NTM drawn from `seed`: what a run is made of, and what resuming
/// builds again.
fn parts(seed: u64, controller: usize) -> Result<RunParts, TrainError> {
    let task = ReverseCopy;
    let mut config = ModelConfig::preset("lstm-ntm")?;
    config.controller.size = controller;
    let model = config.build(
        task.input_size(),
        task.output_size(),
        seed,
        DType::F32,
        &Device::Cpu,
    )?;
    Ok((Box::new(task), model))
}

/// Trains `max_sequences` in `dir`, resuming from its checkpoint if it has one.
fn train(
    dir: &std::path::Path,
    train: TrainConfig,
    controller: usize,
) -> Result<Summary, TrainError> {
    let (task, model) = parts(0, controller)?;
    let mut trainer = Trainer::from_parts(model, task, train, 0)?;
    let checkpoint = dir.join(ntm_train::trainer::files::CHECKPOINT);
    if checkpoint.exists() {
        trainer.load_checkpoint(&checkpoint)?;
    }
    trainer.run(dir, &mut Quiet)
}

fn main() -> Result<(), TrainError> {
    let mut config = TrainConfig::default();
    (config.target_cost, config.patience) = (0.1, 3);
    let s = train(std::path::Path::new("runs/reverse-copy"), config, 100)?;
    println!(
        "reverse copy: {:.3} bits/seq after {} sequences in {:.0} s (converged: {})",
        s.val_bits_per_seq, s.sequences, s.wall_seconds, s.converged
    );
    Ok(())
}

#[test]
fn a_custom_task_trains_and_resumes_exactly() {
    let tiny = |max_sequences| TrainConfig {
        batch_size: 4,
        max_sequences,
        val_sequences: 8,
        eval_every: 2,
        checkpoint_every: 2,
        ..TrainConfig::default()
    };
    let (full, split) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let whole = train(full.path(), tiny(24), 16).unwrap();
    train(split.path(), tiny(12), 16).unwrap();
    let resumed = train(split.path(), tiny(24), 16).unwrap();
    assert_eq!((whole.task.as_str(), whole.sequences), ("reverse-copy", 24));
    assert_eq!(resumed.sequences, 24);
    assert_eq!(
        resumed.val_loss, whole.val_loss,
        "a resumed run ends where an unbroken one does"
    );
}
