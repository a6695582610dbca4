//! Dense time-major arrays and batches.

use crate::TaskError;

/// A time-major dense array of `f32`: `data.len() == steps * batch * width`, and the value of
/// channel `i` of sequence `b` at step `t` sits at index `((t * batch) + b) * width + i`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    /// Number of time steps `T`.
    pub steps: usize,
    /// Number of sequences `B`.
    pub batch: usize,
    /// Number of channels per step.
    pub width: usize,
    /// The values, time-major.
    pub data: Vec<f32>,
}

impl Sequence {
    /// An all-zero array of the given shape.
    ///
    /// # Panics
    ///
    /// If `steps * batch * width` overflows `usize` (use [`Sequence::try_zeros`] to get an error
    /// instead).
    pub fn zeros(steps: usize, batch: usize, width: usize) -> Self {
        match Self::try_zeros(steps, batch, width) {
            Some(seq) => seq,
            None => panic!("Sequence::zeros: {steps} x {batch} x {width} overflows usize"),
        }
    }

    /// An all-zero array of the given shape, or `None` if the element count overflows `usize`.
    pub fn try_zeros(steps: usize, batch: usize, width: usize) -> Option<Self> {
        let len = element_count(steps, batch, width)?;
        Some(Self {
            steps,
            batch,
            width,
            data: vec![0.0; len],
        })
    }

    /// Wraps existing data, checking that its length matches the shape.
    pub fn from_vec(
        steps: usize,
        batch: usize,
        width: usize,
        data: Vec<f32>,
    ) -> Result<Self, TaskError> {
        if element_count(steps, batch, width) != Some(data.len()) {
            return Err(TaskError::ShapeMismatch {
                steps,
                batch,
                width,
                actual: data.len(),
            });
        }
        Ok(Self {
            steps,
            batch,
            width,
            data,
        })
    }

    /// `(steps, batch, width)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.steps, self.batch, self.width)
    }

    fn index(&self, t: usize, b: usize, i: usize) -> usize {
        assert!(
            t < self.steps && b < self.batch && i < self.width,
            "Sequence index ({t}, {b}, {i}) out of bounds for shape {:?}",
            self.shape()
        );
        (t * self.batch + b) * self.width + i
    }

    /// The value of channel `i` of sequence `b` at step `t`.
    ///
    /// # Panics
    ///
    /// If any index is out of bounds.
    pub fn get(&self, t: usize, b: usize, i: usize) -> f32 {
        self.data[self.index(t, b, i)]
    }

    /// Sets the value of channel `i` of sequence `b` at step `t`.
    ///
    /// # Panics
    ///
    /// If any index is out of bounds.
    pub fn set(&mut self, t: usize, b: usize, i: usize, v: f32) {
        let idx = self.index(t, b, i);
        self.data[idx] = v;
    }

    /// The `width` channels of sequence `b` at step `t`.
    ///
    /// # Panics
    ///
    /// If `t` or `b` is out of bounds.
    pub fn row(&self, t: usize, b: usize) -> &[f32] {
        assert!(
            t < self.steps && b < self.batch,
            "Sequence row ({t}, {b}) out of bounds for shape {:?}",
            self.shape()
        );
        let start = (t * self.batch + b) * self.width;
        &self.data[start..start + self.width]
    }

    /// The `width` channels of sequence `b` at step `t`, mutably.
    ///
    /// # Panics
    ///
    /// If `t` or `b` is out of bounds.
    pub fn row_mut(&mut self, t: usize, b: usize) -> &mut [f32] {
        assert!(
            t < self.steps && b < self.batch,
            "Sequence row ({t}, {b}) out of bounds for shape {:?}",
            self.shape()
        );
        let start = (t * self.batch + b) * self.width;
        &mut self.data[start..start + self.width]
    }
}

/// `steps * batch * width`, or `None` on overflow (or if it exceeds `isize::MAX` bytes of `f32`).
fn element_count(steps: usize, batch: usize, width: usize) -> Option<usize> {
    let n = steps.checked_mul(batch)?.checked_mul(width)?;
    let bytes = n.checked_mul(std::mem::size_of::<f32>())?;
    (bytes <= isize::MAX as usize).then_some(n)
}

/// One batch of episodes: inputs, targets and the mask of scored steps, all time-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Inputs, `[T, B, input_size]`.
    pub inputs: Sequence,
    /// Targets, `[T, B, output_size]`; zero where the mask is zero.
    pub targets: Sequence,
    /// `[T, B, 1]`: 1.0 on the steps that are scored (the output phase), else 0.0.
    pub mask: Sequence,
}

impl Batch {
    /// Number of time steps `T`.
    pub fn steps(&self) -> usize {
        self.inputs.steps
    }

    /// Number of sequences `B`.
    pub fn batch_size(&self) -> usize {
        self.inputs.batch
    }

    /// Number of time steps on which at least one sequence is scored.
    ///
    /// Every task here masks all sequences of a batch alike, so this is the number of scored
    /// steps of each sequence.
    pub fn scored_steps(&self) -> usize {
        (0..self.mask.steps)
            .filter(|&t| {
                (0..self.mask.batch).any(|b| self.mask.row(t, b).iter().any(|&m| m != 0.0))
            })
            .count()
    }

    /// An all-zero batch of `batch` episodes of `steps` steps, for `task` (its name, used in
    /// errors): [`TaskError::EmptyBatch`] if `batch == 0`, [`TaskError::TooLarge`] if the arrays
    /// cannot be addressed.
    ///
    /// ```
    /// use ntm_tasks::Batch;
    /// let mut batch = Batch::zeros("mine", 7, 2, 5, 4)?;
    /// batch.mask_steps(4..7);
    /// assert_eq!((batch.steps(), batch.batch_size(), batch.scored_steps()), (7, 2, 3));
    /// # Ok::<(), ntm_tasks::TaskError>(())
    /// ```
    pub fn zeros(
        task: &'static str,
        steps: usize,
        batch: usize,
        input_size: usize,
        output_size: usize,
    ) -> Result<Self, TaskError> {
        Self::zeros_checked(task, Some(steps), batch, input_size, output_size)
    }

    /// [`Batch::zeros`] with a step count that may have overflowed (`None`).
    pub(crate) fn zeros_checked(
        task: &'static str,
        steps: Option<usize>,
        batch: usize,
        input_size: usize,
        output_size: usize,
    ) -> Result<Self, TaskError> {
        if batch == 0 {
            return Err(TaskError::EmptyBatch);
        }
        let too_large = || TaskError::TooLarge {
            task,
            steps: steps.unwrap_or(usize::MAX),
            batch,
            width: input_size.max(output_size),
        };
        let steps = steps.ok_or_else(too_large)?;
        Ok(Self {
            inputs: Sequence::try_zeros(steps, batch, input_size).ok_or_else(too_large)?,
            targets: Sequence::try_zeros(steps, batch, output_size).ok_or_else(too_large)?,
            mask: Sequence::try_zeros(steps, batch, 1).ok_or_else(too_large)?,
        })
    }

    /// Sets the mask of every sequence to 1 on steps `range` (steps past the end are ignored).
    pub fn mask_steps(&mut self, range: std::ops::Range<usize>) {
        for t in range.start..range.end.min(self.mask.steps) {
            for b in 0..self.mask.batch {
                self.mask.set(t, b, 0, 1.0);
            }
        }
    }
}
