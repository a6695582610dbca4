//! The copy task.

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::task::{add, ensure_range, ensure_width, mul, random_bits, unsupported};
use crate::{Batch, CostKind, Size, Task, TaskError};

/// Settings of the copy task. [`Default`] gives the paper's: 8 bits, lengths 1..=20.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CopyConfig {
    /// Bits per vector.
    pub width: usize,
    /// Shortest training sequence.
    pub min_length: usize,
    /// Longest training sequence.
    pub max_length: usize,
}

impl Default for CopyConfig {
    fn default() -> Self {
        Self {
            width: 8,
            min_length: 1,
            max_length: 20,
        }
    }
}

/// Copy: read a sequence of random bit vectors, then write it back.
///
/// Inputs have `width + 1` channels, the last being the delimiter. An episode of length `L` has
/// `2L + 1` steps: `L` data steps, one delimiter step (only the delimiter channel set), then `L`
/// output steps with zero input whose targets (`width` channels) are the sequence again. Only
/// the output steps are scored. [`Size::Length`] sets `L` (any `L >= 1`);
/// [`Size::Repeat`] is unsupported.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyTask {
    config: CopyConfig,
}

impl CopyTask {
    const NAME: &'static str = "copy";

    /// Validates `config`: `width >= 1` and `1 <= min_length <= max_length`.
    pub fn new(config: CopyConfig) -> Result<Self, TaskError> {
        ensure_width(Self::NAME, config.width, 1)?;
        ensure_range(
            Self::NAME,
            "length",
            config.min_length,
            config.max_length,
            1,
        )?;
        Ok(Self { config })
    }

    /// The task's settings.
    pub fn config(&self) -> &CopyConfig {
        &self.config
    }

    /// Steps of an episode of `length` vectors: `2L + 1` (`None` on overflow).
    fn steps(length: usize) -> Option<usize> {
        add(mul(Some(length), 2), 1)
    }
}

impl Task for CopyTask {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn input_size(&self) -> usize {
        self.config.width + 1
    }

    fn output_size(&self) -> usize {
        self.config.width
    }

    fn cost_kind(&self) -> CostKind {
        CostKind::BitErrors
    }

    fn max_steps(&self, size: Option<Size>) -> Option<usize> {
        let length = match size {
            None => self.config.max_length,
            Some(Size::Length(l)) if l >= 1 => l,
            Some(_) => return None,
        };
        Self::steps(length)
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
        let length = match size {
            None => rng.random_range(self.config.min_length..=self.config.max_length),
            Some(Size::Length(l)) if l >= 1 => l,
            Some(s @ Size::Length(_)) => {
                return Err(unsupported(Self::NAME, s, "length must be at least 1"))
            }
            Some(s @ Size::Repeat { .. }) => {
                return Err(unsupported(
                    Self::NAME,
                    s,
                    "copy takes a length, not repeats",
                ))
            }
        };
        let width = self.config.width;
        let steps = Self::steps(length);
        let mut batch = Batch::zeros_checked(Self::NAME, steps, batch_size, width + 1, width)?;
        for b in 0..batch_size {
            for t in 0..length {
                let input = &mut batch.inputs.row_mut(t, b)[..width];
                random_bits(rng, input);
                let bits = input.to_vec();
                batch
                    .targets
                    .row_mut(length + 1 + t, b)
                    .copy_from_slice(&bits);
            }
            batch.inputs.set(length, b, width, 1.0);
        }
        batch.mask_steps(length + 1..2 * length + 1);
        Ok(batch)
    }
}
