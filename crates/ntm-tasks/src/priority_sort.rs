//! The priority sort task.

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::task::{add, ensure, ensure_width, random_bits, unsupported};
use crate::{Batch, CostKind, Size, Task, TaskError};

/// Settings of the priority sort task. [`Default`] gives the paper's: 20 eight-bit vectors in,
/// the 16 of highest priority out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrioritySortConfig {
    /// Bits per vector.
    pub width: usize,
    /// Vectors read per episode.
    pub inputs: usize,
    /// Vectors written per episode (at most `inputs`).
    pub outputs: usize,
}

impl Default for PrioritySortConfig {
    fn default() -> Self {
        Self {
            width: 8,
            inputs: 20,
            outputs: 16,
        }
    }
}

/// Priority sort: read vectors tagged with priorities, write the highest-priority ones in order.
///
/// Inputs have `width + 2` channels: the bits, the priority (channel `width`) and the delimiter
/// (channel `width + 1`). There are `inputs` steps each with a random bit vector and a priority
/// drawn uniformly from `[-1, 1]`, one delimiter step, then `outputs` output steps with zero
/// input whose targets (`width` channels) are the `outputs` vectors of highest priority in
/// decreasing order of priority (equal priorities keep their input order). Only the output steps
/// are scored.
///
/// [`Size::Length`] sets the number of input vectors (at least `outputs`); [`Size::Repeat`] is
/// unsupported.
#[derive(Clone, Debug, PartialEq)]
pub struct PrioritySortTask {
    config: PrioritySortConfig,
}

impl PrioritySortTask {
    const NAME: &'static str = "priority-sort";

    /// Validates `config`: `width >= 1` and `1 <= outputs <= inputs`.
    pub fn new(config: PrioritySortConfig) -> Result<Self, TaskError> {
        ensure_width(Self::NAME, config.width, 2)?;
        ensure(config.outputs >= 1, Self::NAME, || {
            "outputs must be at least 1".into()
        })?;
        ensure(config.outputs <= config.inputs, Self::NAME, || {
            format!(
                "outputs ({}) must not exceed inputs ({})",
                config.outputs, config.inputs
            )
        })?;
        Ok(Self { config })
    }

    /// The task's settings.
    pub fn config(&self) -> &PrioritySortConfig {
        &self.config
    }

    /// Steps of an episode of `inputs` vectors: the inputs, a delimiter, then the outputs
    /// (`None` on overflow).
    fn steps(&self, inputs: usize) -> Option<usize> {
        add(add(Some(inputs), 1), self.config.outputs)
    }
}

impl Task for PrioritySortTask {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn input_size(&self) -> usize {
        self.config.width + 2
    }

    fn output_size(&self) -> usize {
        self.config.width
    }

    fn cost_kind(&self) -> CostKind {
        CostKind::BitErrors
    }

    fn max_steps(&self, size: Option<Size>) -> Option<usize> {
        let inputs = match size {
            None => self.config.inputs,
            Some(Size::Length(n)) if n >= self.config.outputs => n,
            Some(_) => return None,
        };
        self.steps(inputs)
    }

    fn batch(
        &self,
        batch_size: usize,
        size: Option<Size>,
        rng: &mut dyn RngCore,
    ) -> Result<Batch, TaskError> {
        if batch_size == 0 {
            return Err(TaskError::EmptyBatch);
        }
        let (width, outputs) = (self.config.width, self.config.outputs);
        let inputs = match size {
            None => self.config.inputs,
            Some(Size::Length(n)) if n >= outputs => n,
            Some(s @ Size::Length(_)) => {
                return Err(unsupported(
                    Self::NAME,
                    s,
                    format!("at least {outputs} inputs are needed"),
                ))
            }
            Some(s @ Size::Repeat { .. }) => {
                return Err(unsupported(
                    Self::NAME,
                    s,
                    "priority sort takes a number of inputs, not repeats",
                ))
            }
        };
        let steps = self.steps(inputs);
        let mut batch = Batch::zeros_checked(Self::NAME, steps, batch_size, width + 2, width)?;
        let mut order: Vec<(f32, usize)> = Vec::with_capacity(inputs);
        for b in 0..batch_size {
            order.clear();
            for t in 0..inputs {
                let row = batch.inputs.row_mut(t, b);
                random_bits(rng, &mut row[..width]);
                let priority = rng.random_range(-1.0f32..=1.0);
                row[width] = priority;
                order.push((priority, t));
            }
            batch.inputs.set(inputs, b, width + 1, 1.0);
            // Decreasing priority; the sort is stable, so ties keep input order.
            order.sort_by(|x, y| y.0.total_cmp(&x.0));
            for (j, &(_, t)) in order.iter().take(outputs).enumerate() {
                let bits = batch.inputs.row(t, b)[..width].to_vec();
                batch
                    .targets
                    .row_mut(inputs + 1 + j, b)
                    .copy_from_slice(&bits);
            }
        }
        batch.mask_steps(inputs + 1..inputs + 1 + outputs);
        Ok(batch)
    }
}
