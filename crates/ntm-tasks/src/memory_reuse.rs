//! The memory-reuse task: several copy episodes back to back in one sequence.

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::task::{add, ensure, ensure_range, ensure_width, mul, random_bits, unsupported};
use crate::{Batch, CostKind, Size, Task, TaskError};

/// Settings of the memory-reuse task. [`Default`]: 8 bits, lengths 1..=10, four sequences per
/// episode (up to 40 items).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryReuseConfig {
    /// Bits per vector.
    pub width: usize,
    /// Shortest sequence.
    pub min_length: usize,
    /// Longest sequence.
    pub max_length: usize,
    /// Sequences copied one after another in each episode.
    pub sequences: usize,
}

impl Default for MemoryReuseConfig {
    fn default() -> Self {
        Self {
            width: 8,
            min_length: 1,
            max_length: 10,
            sequences: 4,
        }
    }
}

/// Memory reuse: copy several sequences, one after another, in one episode.
///
/// Each of the `S` sequences is a copy episode of its own: `L` random vectors, a delimiter step,
/// then `L` output steps whose targets are that sequence. An episode has `S (2L + 1)` steps and
/// `S L` items in all; with more items than memory rows (the defaults' 40 and
/// `--set model.memory.rows=16`, say) a memory can only succeed by freeing the rows of a
/// sequence once it is copied back and writing the next one there, which is what the DNC's free
/// gates and allocation are for (Graves et al. 2016). Inputs have `width + 1` channels, the last
/// the delimiter; only the output steps are scored. All sequences of an episode share `L`;
/// [`Size::Length`] sets `L`, [`Size::Repeat`] sets `L` and `S` (`LxS`).
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryReuseTask {
    config: MemoryReuseConfig,
}

impl MemoryReuseTask {
    const NAME: &'static str = "memory-reuse";

    /// Validates `config`: `width >= 1`, `1 <= min_length <= max_length`, `sequences >= 1`.
    pub fn new(config: MemoryReuseConfig) -> Result<Self, TaskError> {
        ensure_width(Self::NAME, config.width, 1)?;
        ensure_range(
            Self::NAME,
            "length",
            config.min_length,
            config.max_length,
            1,
        )?;
        ensure(config.sequences >= 1, Self::NAME, || {
            "sequences must be at least 1".into()
        })?;
        Ok(Self { config })
    }

    /// The task's settings.
    pub fn config(&self) -> &MemoryReuseConfig {
        &self.config
    }

    /// Steps of an episode of `sequences` sequences of `length` vectors, each followed by its
    /// delimiter and its copy: `S * (2L + 1)` (`None` on overflow).
    fn steps(length: usize, sequences: usize) -> Option<usize> {
        mul(add(mul(Some(length), 2), 1), sequences)
    }
}

impl Task for MemoryReuseTask {
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
        let (length, sequences) = match size {
            None => (self.config.max_length, self.config.sequences),
            Some(Size::Length(l)) if l >= 1 => (l, self.config.sequences),
            Some(Size::Repeat { length, repeats }) if length >= 1 && repeats >= 1 => {
                (length, repeats)
            }
            Some(_) => return None,
        };
        Self::steps(length, sequences)
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
        let (length, sequences) = match size {
            None => (
                rng.random_range(self.config.min_length..=self.config.max_length),
                self.config.sequences,
            ),
            Some(Size::Length(l)) if l >= 1 => (l, self.config.sequences),
            Some(Size::Repeat { length, repeats }) if length >= 1 && repeats >= 1 => {
                (length, repeats)
            }
            Some(s) => {
                return Err(unsupported(
                    Self::NAME,
                    s,
                    "length and sequences must be at least 1",
                ))
            }
        };
        let width = self.config.width;
        let span = 2 * length + 1;
        let steps = Self::steps(length, sequences);
        let mut batch = Batch::zeros_checked(Self::NAME, steps, batch_size, width + 1, width)?;
        for k in 0..sequences {
            let start = k * span;
            for b in 0..batch_size {
                for t in 0..length {
                    let input = &mut batch.inputs.row_mut(start + t, b)[..width];
                    random_bits(rng, input);
                    let bits = input.to_vec();
                    batch
                        .targets
                        .row_mut(start + length + 1 + t, b)
                        .copy_from_slice(&bits);
                }
                batch.inputs.set(start + length, b, width, 1.0);
            }
            batch.mask_steps(start + length + 1..start + span);
        }
        Ok(batch)
    }
}
