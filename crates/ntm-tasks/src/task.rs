//! The [`Task`] trait and what it reports.

use std::fmt;

use rand::{Rng, RngCore};

use crate::{Batch, Size, TaskError};

/// How a task's reported cost is measured, in bits per sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CostKind {
    /// Number of wrongly predicted bits (`|round(sigmoid(x)) - t|` summed over the scored
    /// outputs), averaged over sequences.
    BitErrors,
    /// Binary cross-entropy of the scored outputs in bits (natural-log loss / ln 2), averaged
    /// over sequences.
    CrossEntropyBits,
}

impl fmt::Display for CostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CostKind::BitErrors => "bit-errors",
            CostKind::CrossEntropyBits => "cross-entropy-bits",
        })
    }
}

/// A generator of batches of input/target episodes: one of the paper's algorithmic tasks, or
/// any other.
///
/// Implement it for a task of your own and it trains, checkpoints and evaluates like the
/// built-in ones (`ntm_train::Trainer::from_parts`). [`Batch::zeros`], [`Batch::mask_steps`]
/// and [`random_bits`] build a batch; [`rand`](crate::rand) is re-exported so that the
/// generator types match.
pub trait Task: Send + Sync {
    /// The task's name. The built-in tasks are `"copy"`, `"repeat-copy"`,
    /// `"associative-recall"`, `"ngrams"` and `"priority-sort"`; any other name is free for a
    /// task of your own (it names the task in run directories and summaries).
    fn name(&self) -> &'static str;

    /// Channels of each input step.
    fn input_size(&self) -> usize;

    /// Channels of each target step.
    fn output_size(&self) -> usize;

    /// How the task's reported cost is measured.
    fn cost_kind(&self) -> CostKind;

    /// A batch of `batch_size` episodes from the training distribution (`size = None`) or at an
    /// overridden size.
    ///
    /// All episodes of a batch share the same length (drawn once per batch), so a batch holds
    /// no padding. Errors: [`TaskError::EmptyBatch`] when `batch_size == 0`,
    /// [`TaskError::UnsupportedSize`] when the task cannot honour `size`, and
    /// [`TaskError::TooLarge`] when the arrays would not fit in memory addressing.
    fn batch(
        &self,
        batch_size: usize,
        size: Option<Size>,
        rng: &mut dyn RngCore,
    ) -> Result<Batch, TaskError>;

    /// The most time steps an episode of [`Task::batch`] can have at `size` (`None`: the
    /// training distribution), computed without building one, so that a caller can check the
    /// memory a request needs before allocating it. `None` when unknown, when it overflows, or
    /// when the task cannot honour `size` (then [`Task::batch`] says why). Tasks of your own
    /// may leave the default, which knows nothing.
    fn max_steps(&self, size: Option<Size>) -> Option<usize> {
        let _ = size;
        None
    }

    /// Bits per sequence of the Bayes-optimal predictor on `batch` (N-grams only; `None` for the
    /// other tasks and for batches whose shape does not fit the task).
    fn optimal_cost(&self, batch: &Batch) -> Option<f64> {
        let _ = batch;
        None
    }
}

/// Fills `out` with independent fair bits (0.0 or 1.0).
pub fn random_bits(rng: &mut dyn RngCore, out: &mut [f32]) {
    for v in out {
        *v = if rng.random::<bool>() { 1.0 } else { 0.0 };
    }
}

/// `a + b`, `a * b` chains as `Option`, for computing step counts without overflow.
pub(crate) fn add(a: Option<usize>, b: usize) -> Option<usize> {
    a?.checked_add(b)
}

/// See [`add`].
pub(crate) fn mul(a: Option<usize>, b: usize) -> Option<usize> {
    a?.checked_mul(b)
}

/// `Err(InvalidConfig)` unless `ok`.
pub(crate) fn ensure(
    ok: bool,
    task: &'static str,
    reason: impl FnOnce() -> String,
) -> Result<(), TaskError> {
    if ok {
        Ok(())
    } else {
        Err(TaskError::InvalidConfig {
            task,
            reason: reason(),
        })
    }
}

/// Checks a pair of options `min_<what>` and `max_<what>`: `floor <= min <= max`.
pub(crate) fn ensure_range(
    task: &'static str,
    what: &str,
    min: usize,
    max: usize,
    floor: usize,
) -> Result<(), TaskError> {
    ensure(min >= floor, task, || {
        format!("min_{what} must be at least {floor}")
    })?;
    ensure(min <= max, task, || {
        format!("min_{what} ({min}) must not exceed max_{what} ({max})")
    })
}

/// `Err(UnsupportedSize)` with a reason.
pub(crate) fn unsupported(task: &'static str, size: Size, reason: impl Into<String>) -> TaskError {
    TaskError::UnsupportedSize {
        task,
        size,
        reason: reason.into(),
    }
}

/// Checks that a channel count plus `extra` flag channels fits in `usize`.
pub(crate) fn ensure_width(
    task: &'static str,
    width: usize,
    extra: usize,
) -> Result<(), TaskError> {
    ensure(width >= 1, task, || "width must be at least 1".into())?;
    ensure(width.checked_add(extra).is_some(), task, || {
        format!("width {width} is too large")
    })
}
