//! A controller of your own, coupled to the NTM memory and trained on copy through the library:
//! a one-layer tanh RNN (Elman 1990), with checkpoints, then loaded back with a factory and
//! tested on longer sequences.
//!
//! `cargo run --release -p ntm-train --example custom_controller` trains it on copy and writes
//! the run to `runs/copy-rnn-ntm`.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ntm::controller::{Controller, ControllerError};
use ntm::memory::{Memory, NtmMemory, NtmMemoryConfig};
use ntm::params::{Init, Params};
use ntm::Ntm;
use ntm_tasks::{CopyConfig, CopyTask, Size, Task};
use ntm_train::{load_run_with, Quiet, RunParts, TrainConfig, TrainError, Trainer};

/// `h' = tanh([x, h] W + b)`, starting from a learned `h0`.
#[derive(Debug, Clone)]
struct Rnn {
    weight: Tensor,
    bias: Tensor,
    h0: Tensor,
    input_size: usize,
}

impl Rnn {
    fn new(params: &Params, input_size: usize, size: usize) -> Result<Self, ControllerError> {
        let bound = Init::Uniform(1.0 / (size as f64).sqrt());
        Ok(Self {
            weight: params.get((input_size + size, size), "weight", bound)?,
            bias: params.get(size, "bias", Init::Const(0.0))?,
            h0: params.get(size, "h0", Init::Const(0.0))?,
            input_size,
        })
    }
}

impl Controller for Rnn {
    type State = Tensor;
    fn input_size(&self) -> usize {
        self.input_size
    }
    fn output_size(&self) -> usize {
        self.h0.dim(0).unwrap_or(0)
    }
    fn initial_state(&self, batch: usize) -> Result<Tensor, ControllerError> {
        Ok(self
            .h0
            .unsqueeze(0)?
            .broadcast_as((batch, self.output_size()))?)
    }
    fn step(&self, input: &Tensor, h: &Tensor) -> Result<(Tensor, Tensor), ControllerError> {
        let z = Tensor::cat(&[input, h], 1)?.matmul(&self.weight)?;
        let h = ntm::params::add_bias(&z, &self.bias)?.tanh()?;
        Ok((h.clone(), h))
    }
}

/// The copy task and a fresh RNN NTM drawn from `seed`.
fn parts(seed: u64, size: usize) -> Result<RunParts, TrainError> {
    let task = CopyTask::new(CopyConfig::default())?;
    let params = Params::new(seed, DType::F32, &Device::Cpu);
    let memory = NtmMemory::new(&params.pp("memory"), &NtmMemoryConfig::default())?;
    let (i, o) = (task.input_size(), task.output_size());
    let rnn = Rnn::new(&params.pp("controller"), i + memory.read_size(), size)?;
    let model = Ntm::from_parts(&params, i, o, rnn, memory, 20.0)?;
    Ok((Box::new(task), Box::new(model)))
}

/// Trains in `dir`, then loads the run back and returns the bit errors at length 30.
fn train_and_test(dir: &Path, train: TrainConfig, size: usize) -> Result<f64, TrainError> {
    let (task, model) = parts(1, size)?;
    let summary = Trainer::from_parts(model, task, train, 1)?.run(dir, &mut Quiet)?;
    println!(
        "rnn-ntm on copy: {:.3} bits/seq after {} sequences in {:.0} s (converged: {})",
        summary.val_bits_per_seq, summary.sequences, summary.wall_seconds, summary.converged
    );
    let run = load_run_with(dir, |config| parts(config.seed, size))?;
    let at_30 = ntm_train::evaluate(
        run.model.as_ref(),
        run.task.as_ref(),
        100,
        50,
        Some(Size::Length(30)),
        5,
    )?;
    Ok(at_30.cost)
}

fn main() -> Result<(), TrainError> {
    let mut train = TrainConfig::default();
    (train.target_cost, train.patience) = (0.1, 3);
    let cost = train_and_test(Path::new("runs/copy-rnn-ntm"), train, 100)?;
    println!("length 30: {cost:.3} bits/seq");
    Ok(())
}

#[test]
fn a_custom_controller_trains_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let train = TrainConfig {
        batch_size: 2,
        max_sequences: 8,
        val_sequences: 4,
        ..TrainConfig::default()
    };
    let cost = train_and_test(dir.path(), train, 8).unwrap();
    assert!(
        cost.is_finite() && cost > 0.0,
        "an untrained model makes errors: {cost}"
    );
    // A factory that builds another model is refused, not loaded.
    assert!(load_run_with(dir.path(), |c| parts(c.seed, 9)).is_err());
}
