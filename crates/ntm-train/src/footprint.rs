//! Memory estimates made before anything is allocated, so that an absurd size (a memory of a
//! billion rows, a batch of a trillion sequences, an evaluation at length 10^15) is a clear
//! error instead of an allocation failure that aborts the process.
//!
//! The figures are estimates of the peak, within a small factor: the parameters with their
//! gradients and optimiser moments, the episodes generated up front, and what the autograd
//! graph keeps per sequence and time step for the backward pass. They are computed in `f64`,
//! so no size overflows.

use ntm::footprint::model_footprint;
pub use ntm::footprint::{ModelFootprint, ABSURD_BYTES};
use ntm::ModelConfig;
use ntm_tasks::{Size, Task};

use crate::config::RunConfig;

/// Bytes of one `f32`.
const F32: f64 = 4.0;
use crate::{Result, TrainError};

/// What one request needs, with what it is, for a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// What was asked for (`training copy lstm-ntm`, `evaluation at length 100000`).
    pub what: String,
    /// Bytes at the peak.
    pub bytes: f64,
}

impl Estimate {
    /// An error unless the estimate is within `limit` bytes.
    pub fn check(&self, limit: f64) -> Result<()> {
        if self.bytes.is_finite() && self.bytes <= limit {
            Ok(())
        } else {
            Err(TrainError::TooLarge {
                what: self.what.clone(),
                needed: self.bytes,
                limit,
            })
        }
    }
}

fn steps(task: &dyn Task, size: Option<Size>) -> f64 {
    // Unknown (a task of your own) counts as short: the check then covers the model alone.
    task.max_steps(size).map_or(1.0, |s| s as f64)
}

/// Bytes of one value of the model's dtype.
fn value_bytes(model: Option<&ModelConfig>) -> f64 {
    model.map_or(F32, |m| m.dtype.dtype().size_in_bytes() as f64)
}

fn data_per_step(task: &dyn Task) -> f64 {
    // Inputs, targets and the mask.
    (task.input_size() + task.output_size() + 1) as f64 * F32
}

/// The peak memory of training `config` on `task`: parameters with gradients and optimiser
/// moments, the validation set (generated up front), and the larger of a training batch and a
/// validation batch through the model with its graph.
pub fn training(config: &RunConfig, task: &dyn Task) -> Estimate {
    let t = &config.train;
    let steps = steps(task, None);
    let model = config
        .model
        .as_ref()
        .map(|m| model_footprint(m, task.input_size(), task.output_size()));
    let (params, per_step) = model.map_or((0.0, 0.0), |m| (m.params, m.per_step));
    let value = value_bytes(config.model.as_ref());
    let batch = t.batch_size.max(t.val_batch) as f64;
    let bytes = params * 6.0 * value
        + t.val_sequences as f64 * steps * data_per_step(task)
        + batch * steps * (per_step * value + data_per_step(task));
    Estimate {
        what: format!("training {} on {}", config.model_name(), task.name()),
        bytes,
    }
}

/// The peak memory of running `model` over `sequences` episodes at `size`, `batch` at a time,
/// all generated up front (an evaluation, a figure or a benchmark).
pub fn inference(
    model: Option<&ModelConfig>,
    task: &dyn Task,
    size: Option<Size>,
    sequences: usize,
    batch: usize,
) -> Estimate {
    let steps = steps(task, size);
    let m = model.map(|m| model_footprint(m, task.input_size(), task.output_size()));
    let (params, per_step) = m.map_or((0.0, 0.0), |m| (m.params, m.per_step));
    let value = value_bytes(model);
    let batch = batch.min(sequences).max(1) as f64;
    let bytes = params * 2.0 * value
        + sequences as f64 * steps * data_per_step(task)
        + batch * steps * (per_step * value + data_per_step(task));
    let at = size.map_or_else(|| "the training sizes".to_string(), |s| format!("size {s}"));
    Estimate {
        what: format!("{sequences} sequences of {} at {at}", task.name()),
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    fn copy_config(sets: &[&str]) -> RunConfig {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        RunConfig::resolve(Some("copy"), Some("lstm-ntm"), None, &sets).unwrap()
    }

    #[test]
    fn the_parameter_bound_holds_for_every_built_in_model() {
        let registry = Registry::default();
        for model in registry.models.names() {
            let config = registry.default_run("copy", &model).unwrap();
            let (task, built) = registry.build(&config, &candle_core::Device::Cpu).unwrap();
            let f = model_footprint(
                config.model.as_ref().unwrap(),
                task.input_size(),
                task.output_size(),
            );
            let actual = built.param_count() as f64;
            assert!(
                f.params >= actual && f.params <= 4.0 * actual,
                "{model}: estimate {} against {actual}",
                f.params
            );
        }
    }

    #[test]
    fn absurd_sizes_are_refused_and_the_default_is_not() {
        let registry = Registry::default();
        let limit = 8.0 * (1u64 << 30) as f64;
        let ok = copy_config(&[]);
        let task = registry.tasks.build(&ok.task).unwrap();
        training(&ok, task.as_ref()).check(limit).unwrap();
        for set in [
            "model.memory.rows=1000000000",
            "train.batch_size=1000000000000",
            "model.controller.size=1000000",
            "train.val_sequences=1000000000000",
            "model.memory.rows=9223372036854775807",
        ] {
            let config = copy_config(&[set]);
            let err = training(&config, task.as_ref()).check(limit).unwrap_err();
            assert!(matches!(err, TrainError::TooLarge { .. }), "{set}: {err}");
        }
        let model = ok.model.as_ref();
        inference(model, task.as_ref(), Some(Size::Length(120)), 1000, 50)
            .check(limit)
            .unwrap();
        let err = inference(model, task.as_ref(), Some(Size::Length(100_000)), 1000, 50)
            .check(limit)
            .unwrap_err();
        assert!(err.to_string().contains("size 100000"), "{err}");
    }
}
