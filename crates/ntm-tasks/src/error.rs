//! The crate's error type.

use crate::Size;

/// Everything that can go wrong when configuring a task or generating a batch.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TaskError {
    /// A task name that none of the tasks answers to.
    #[error("unknown task `{name}`; known tasks are: {known}")]
    UnknownTask {
        /// The name that was asked for.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// Options that the task does not accept, or a name registered twice.
    #[error("task {task}: {reason}")]
    BadOptions {
        /// The task's name.
        task: String,
        /// What is wrong.
        reason: String,
    },
    /// A task configuration that breaks one of the task's rules.
    #[error("invalid {task} config: {reason}")]
    InvalidConfig {
        /// The task's name.
        task: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A size override that the task cannot honour.
    #[error("task {task} does not support size {size}: {reason}")]
    UnsupportedSize {
        /// The task's name.
        task: &'static str,
        /// The size that was asked for.
        size: Size,
        /// Why it cannot be honoured.
        reason: String,
    },
    /// A string that does not parse as a [`Size`].
    #[error(
        "invalid size `{input}`: expected `LENGTH` or `LENGTHxREPEATS` (e.g. `40` or `10x20`)"
    )]
    InvalidSize {
        /// The string that failed to parse.
        input: String,
    },
    /// A batch size of zero.
    #[error("batch size must be at least 1")]
    EmptyBatch,
    /// A batch whose arrays would not fit in memory addressing (`steps * batch * width` overflows).
    #[error(
        "task {task}: a batch of {steps} steps x {batch} sequences x {width} channels is too large"
    )]
    TooLarge {
        /// The task's name.
        task: &'static str,
        /// Number of time steps asked for (saturated at `usize::MAX` on overflow).
        steps: usize,
        /// Batch size.
        batch: usize,
        /// Channels of the widest array.
        width: usize,
    },
    /// Data whose length does not match the shape it was given for.
    #[error("data of length {actual} does not match shape {steps} x {batch} x {width}")]
    ShapeMismatch {
        /// Time steps.
        steps: usize,
        /// Batch size.
        batch: usize,
        /// Channels.
        width: usize,
        /// Length of the data provided.
        actual: usize,
    },
}
