//! The associative recall task.

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::task::{add, ensure, ensure_range, ensure_width, mul, random_bits, unsupported};
use crate::{Batch, CostKind, Size, Task, TaskError};

/// Settings of the associative recall task. [`Default`] gives the paper's: items of 3 six-bit
/// vectors, 2..=6 items per episode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssociativeRecallConfig {
    /// Bits per vector.
    pub width: usize,
    /// Vectors per item.
    pub item_length: usize,
    /// Fewest items per training episode (at least 2).
    pub min_items: usize,
    /// Most items per training episode.
    pub max_items: usize,
}

impl Default for AssociativeRecallConfig {
    fn default() -> Self {
        Self {
            width: 6,
            item_length: 3,
            min_items: 2,
            max_items: 6,
        }
    }
}

/// Associative recall: read a list of items, then one of them as a query, and answer with the
/// item that followed it in the list.
///
/// Inputs have `width + 2` channels: the bits, the item delimiter (channel `width`) and the query
/// delimiter (channel `width + 1`). Targets have `width` channels. For each of the `K` items
/// there is one item-delimiter step followed by `item_length` data steps; then a query-delimiter
/// step, the query item's `item_length` steps, another query-delimiter step, and `item_length`
/// output steps with zero input whose targets are the item that followed the query. The query is
/// drawn uniformly from items `0..K-1` (never the last). Only the output steps are scored.
///
/// An episode has `K * (item_length + 1) + 2 * item_length + 2` steps. [`Size::Length`] sets `K`
/// (at least 2); [`Size::Repeat`] is unsupported.
#[derive(Clone, Debug, PartialEq)]
pub struct AssociativeRecallTask {
    config: AssociativeRecallConfig,
}

impl AssociativeRecallTask {
    const NAME: &'static str = "associative-recall";

    /// Validates `config`: `width >= 1`, `item_length >= 1` and `2 <= min_items <= max_items`.
    pub fn new(config: AssociativeRecallConfig) -> Result<Self, TaskError> {
        ensure_width(Self::NAME, config.width, 2)?;
        ensure(config.item_length >= 1, Self::NAME, || {
            "item_length must be at least 1".into()
        })?;
        ensure_range(Self::NAME, "items", config.min_items, config.max_items, 2)?;
        Ok(Self { config })
    }

    /// The task's settings.
    pub fn config(&self) -> &AssociativeRecallConfig {
        &self.config
    }

    /// Steps of an episode of `items` items: `K * (item_length + 1) + 2 * item_length + 2`
    /// (`None` on overflow).
    fn steps(&self, items: usize) -> Option<usize> {
        let il = self.config.item_length;
        add(add(add(mul(il.checked_add(1), items), il), il), 2)
    }
}

impl Task for AssociativeRecallTask {
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
        let c = &self.config;
        let items = match size {
            None => c.max_items,
            Some(Size::Length(k)) if k >= 2 => k,
            Some(_) => return None,
        };
        self.steps(items)
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
        let items = match size {
            None => rng.random_range(c.min_items..=c.max_items),
            Some(Size::Length(k)) if k >= 2 => k,
            Some(s @ Size::Length(_)) => {
                return Err(unsupported(Self::NAME, s, "at least 2 items are needed"))
            }
            Some(s @ Size::Repeat { .. }) => {
                return Err(unsupported(
                    Self::NAME,
                    s,
                    "associative recall takes an item count, not repeats",
                ))
            }
        };
        let (width, il) = (c.width, c.item_length);
        let steps = self.steps(items);
        let mut batch = Batch::zeros_checked(Self::NAME, steps, batch_size, width + 2, width)?;
        let query_start = items * (il + 1);
        let output_start = query_start + il + 2;
        let mut item = vec![0.0f32; il * width];
        for b in 0..batch_size {
            // The items: a delimiter step, then the item's vectors.
            for k in 0..items {
                let first = k * (il + 1);
                batch.inputs.set(first, b, width, 1.0);
                for j in 0..il {
                    random_bits(rng, &mut batch.inputs.row_mut(first + 1 + j, b)[..width]);
                }
            }
            let query = rng.random_range(0..items - 1);
            // The query between two query delimiters.
            batch.inputs.set(query_start, b, width + 1, 1.0);
            batch.inputs.set(query_start + il + 1, b, width + 1, 1.0);
            for j in 0..il {
                let from = &batch.inputs.row(query * (il + 1) + 1 + j, b)[..width];
                item[j * width..(j + 1) * width].copy_from_slice(from);
            }
            for j in 0..il {
                batch.inputs.row_mut(query_start + 1 + j, b)[..width]
                    .copy_from_slice(&item[j * width..(j + 1) * width]);
            }
            // The answer: the item after the query.
            for j in 0..il {
                let from = &batch.inputs.row((query + 1) * (il + 1) + 1 + j, b)[..width];
                item[j * width..(j + 1) * width].copy_from_slice(from);
            }
            for j in 0..il {
                batch
                    .targets
                    .row_mut(output_start + j, b)
                    .copy_from_slice(&item[j * width..(j + 1) * width]);
            }
        }
        batch.mask_steps(output_start..output_start + il);
        Ok(batch)
    }
}
