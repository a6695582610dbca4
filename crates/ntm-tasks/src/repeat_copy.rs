//! The repeat copy task.

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::task::{add, ensure_range, ensure_width, mul, random_bits, unsupported};
use crate::{Batch, CostKind, Size, Task, TaskError};

/// Settings of the repeat copy task. [`Default`] gives the paper's: 8 bits, lengths 1..=10,
/// repeats 1..=10.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepeatCopyConfig {
    /// Bits per vector.
    pub width: usize,
    /// Shortest training sequence.
    pub min_length: usize,
    /// Longest training sequence.
    pub max_length: usize,
    /// Fewest training repeats.
    pub min_repeats: usize,
    /// Most training repeats.
    pub max_repeats: usize,
}

impl Default for RepeatCopyConfig {
    fn default() -> Self {
        Self {
            width: 8,
            min_length: 1,
            max_length: 10,
            min_repeats: 1,
            max_repeats: 10,
        }
    }
}

/// Repeat copy: read a sequence and a repeat count, write the sequence that many times, then an
/// end marker.
///
/// Inputs have `width + 2` channels: the bits, a delimiter flag (channel `width`) and the repeat
/// count (channel `width + 1`). An episode of length `L` and `R` repeats has `L` data steps, one
/// step with the delimiter flag 1 and the repeat channel set to `(R - mean) / std` (the mean and
/// standard deviation of the uniform integer distribution `min_repeats..=max_repeats`, so the
/// channel has mean 0 and variance 1 over the training range; std 1 when the range is a single
/// value), then `R * L + 1` output steps with zero input. Targets have `width + 1` channels: the
/// sequence `R` times, then a step whose only 1 is the end marker (channel `width`). Only the
/// output steps are scored.
///
/// [`Size::Repeat`] sets both `L` and `R`; [`Size::Length`] sets `L` only (`R` is still drawn).
/// Both must be at least 1.
#[derive(Clone, Debug, PartialEq)]
pub struct RepeatCopyTask {
    config: RepeatCopyConfig,
}

impl RepeatCopyTask {
    const NAME: &'static str = "repeat-copy";

    /// Validates `config`: `width >= 1`, `1 <= min_length <= max_length` and
    /// `1 <= min_repeats <= max_repeats`.
    pub fn new(config: RepeatCopyConfig) -> Result<Self, TaskError> {
        ensure_width(Self::NAME, config.width, 2)?;
        ensure_range(
            Self::NAME,
            "length",
            config.min_length,
            config.max_length,
            1,
        )?;
        ensure_range(
            Self::NAME,
            "repeats",
            config.min_repeats,
            config.max_repeats,
            1,
        )?;
        Ok(Self { config })
    }

    /// The task's settings.
    pub fn config(&self) -> &RepeatCopyConfig {
        &self.config
    }

    /// Steps of an episode: `L` data steps, 1 delimiter step, `R * L + 1` output steps
    /// (`None` on overflow).
    fn steps(length: usize, repeats: usize) -> Option<usize> {
        add(add(add(mul(Some(repeats), length), 1), length), 1)
    }

    /// The value of the repeat channel for `repeats` repeats: `(repeats - mean) / std` over the
    /// training range of repeats.
    pub fn normalised_repeats(&self, repeats: usize) -> f32 {
        let min = self.config.min_repeats as f64;
        let max = self.config.max_repeats as f64;
        let mean = (min + max) / 2.0;
        let n = max - min + 1.0;
        let std = if n > 1.0 {
            ((n * n - 1.0) / 12.0).sqrt()
        } else {
            1.0
        };
        ((repeats as f64 - mean) / std) as f32
    }
}

impl Task for RepeatCopyTask {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn input_size(&self) -> usize {
        self.config.width + 2
    }

    fn output_size(&self) -> usize {
        self.config.width + 1
    }

    fn cost_kind(&self) -> CostKind {
        CostKind::BitErrors
    }

    fn max_steps(&self, size: Option<Size>) -> Option<usize> {
        let c = &self.config;
        let (length, repeats) = match size {
            None => (c.max_length, c.max_repeats),
            Some(Size::Length(l)) if l >= 1 => (l, c.max_repeats),
            Some(Size::Repeat { length, repeats }) if length >= 1 && repeats >= 1 => {
                (length, repeats)
            }
            Some(_) => return None,
        };
        Self::steps(length, repeats)
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
        let c = &self.config;
        let (length, repeats) = match size {
            None => {
                let length = rng.random_range(c.min_length..=c.max_length);
                (length, rng.random_range(c.min_repeats..=c.max_repeats))
            }
            Some(s @ Size::Length(length)) => {
                if length == 0 {
                    return Err(unsupported(Self::NAME, s, "length must be at least 1"));
                }
                (length, rng.random_range(c.min_repeats..=c.max_repeats))
            }
            Some(s @ Size::Repeat { length, repeats }) => {
                if length == 0 || repeats == 0 {
                    return Err(unsupported(
                        Self::NAME,
                        s,
                        "length and repeats must be at least 1",
                    ));
                }
                (length, repeats)
            }
        };
        let width = c.width;
        let steps = Self::steps(length, repeats);
        let mut batch = Batch::zeros_checked(Self::NAME, steps, batch_size, width + 2, width + 1)?;
        let start = length + 1;
        let end_marker = start + repeats * length;
        let repeat_value = self.normalised_repeats(repeats);
        for b in 0..batch_size {
            for t in 0..length {
                let input = &mut batch.inputs.row_mut(t, b)[..width];
                random_bits(rng, input);
                let bits = input.to_vec();
                for r in 0..repeats {
                    let row = batch.targets.row_mut(start + r * length + t, b);
                    row[..width].copy_from_slice(&bits);
                }
            }
            batch.inputs.set(length, b, width, 1.0);
            batch.inputs.set(length, b, width + 1, repeat_value);
            batch.targets.set(end_marker, b, width, 1.0);
        }
        batch.mask_steps(start..end_marker + 1);
        Ok(batch)
    }
}
