//! Training for sequence models: a [`Trainer`] fits any [`ntm::SequenceModel`] to any
//! [`ntm_tasks::Task`].
//!
//! Batches come from a seeded stream; the loss is the masked binary cross-entropy from logits
//! in its stable form; RMSProp (Graves 2013) or Adam with per-element and global-norm
//! clipping; validation on a fixed held-out set; metrics as JSON lines; atomic checkpoints from
//! which a run continues exactly where it stopped. A [`RunConfig`] describes a whole run by
//! name and reads from TOML; [`Trainer::from_parts`] takes a model and a task you built in code.
//!
//! From a configuration:
//!
//! ```
//! use candle_core::Device;
//! use ntm_train::{RunConfig, Trainer};
//!
//! # fn main() -> Result<(), ntm_train::TrainError> {
//! let sets = ["model.memory.rows=16", "model.controller.size=16", "train.batch_size=4",
//!             "train.val_sequences=8", "task.max_length=3"].map(String::from);
//! let config = RunConfig::resolve(Some("copy"), Some("lstm-ntm"), None, &sets)?;
//! let mut trainer = Trainer::new(config, &Device::Cpu)?;
//! let first = trainer.step()?;
//! assert_eq!((first.step, first.sequences), (1, 4));
//! assert!(first.loss_bits.is_finite());
//! let val = trainer.validate()?;
//! assert_eq!(val.sequences, 8);
//! # Ok(())
//! # }
//! ```
//!
//! From parts: a model and a task of your own (here built-in ones, put together by hand):
//!
//! ```
//! use candle_core::{DType, Device};
//! use ntm::controller::{Lstm, LstmConfig};
//! use ntm::memory::{Memory, NtmMemory, NtmMemoryConfig};
//! use ntm::params::Params;
//! use ntm::Ntm;
//! use ntm_tasks::{CopyConfig, CopyTask, Task};
//! use ntm_train::{Quiet, TrainConfig, Trainer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let task = CopyTask::new(CopyConfig { max_length: 3, ..Default::default() })?;
//! let seed = 7;
//! let params = Params::new(seed, DType::F32, &Device::Cpu);
//! let memory = NtmMemory::new(
//!     &params.pp("memory"),
//!     &NtmMemoryConfig { rows: 16, width: 8, ..Default::default() },
//! )?;
//! let input = task.input_size() + memory.read_size();
//! let lstm = Lstm::new(&params.pp("controller"), input, &LstmConfig { size: 16, layers: 1 })?;
//! let model = Ntm::from_parts(&params, task.input_size(), task.output_size(), lstm, memory, 20.0)?;
//!
//! let train = TrainConfig { batch_size: 4, max_sequences: 16, val_sequences: 8, ..Default::default() };
//! let mut trainer = Trainer::from_parts(Box::new(model), Box::new(task), train, seed)?;
//! let dir = tempfile::tempdir()?;
//! let summary = trainer.run(dir.path(), &mut Quiet)?; // checkpoints, metrics, summary.json
//! assert_eq!(summary.sequences, 16);
//! # Ok(())
//! # }
//! ```

pub mod checkpoint;
pub mod config;
pub mod experiment;
pub mod footprint;
pub mod loss;
pub mod optim;
pub mod rundir;
pub mod trainer;

use std::path::PathBuf;

pub use checkpoint::Progress;
pub use config::{
    default_model, ConfigChange, EvalConfig, Registry, RunConfig, RunParts, TrainConfig,
};
pub use loss::{bit_errors, bit_errors_tensor, masked_bce};
pub use optim::{Optimizer, OptimizerConfig, Schedule};
pub use rundir::RunDir;
pub use trainer::{
    evaluate, host_reads, load_run, load_run_for_eval, load_run_with, load_run_with_rows,
    make_batches, merge_stats, read_metrics, read_sessions, run_config, score, score_logits,
    to_tensor, trace, EvalStats, LoadedRun, MetricsRecord, Observer, Quiet, SessionRecord,
    StepStats, Summary, Trainer,
};

/// Errors from training, checkpoints and configuration.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The configuration is invalid.
    #[error("config: {0}")]
    Config(String),
    /// A checkpoint is missing pieces, corrupt, or from another model.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The loss, a gradient, the parameters or the validation cost became NaN or infinite.
    #[error("the {what} became non-finite at step {step}")]
    NonFinite {
        /// The update that failed (for the validation, the update it followed).
        step: u64,
        /// `loss`, `gradient`, `parameters after the update` or `validation cost`.
        what: &'static str,
    },
    /// A run stopped on an error; says what its directory holds.
    #[error("{cause}; {on_disk}")]
    Stopped {
        /// What went wrong.
        cause: Box<TrainError>,
        /// Where the last checkpoint is and of which step, or that none was written.
        on_disk: String,
    },
    /// A signal asked the run to stop; a checkpoint of the last update was written first.
    #[error("interrupted after step {step}: the checkpoint and metrics of that step are in {}", dir.display())]
    Interrupted {
        /// The last update applied and checkpointed.
        step: u64,
        /// The run directory.
        dir: PathBuf,
    },
    /// Another process is writing to the run directory.
    #[error("{} is in use by {holder}: one run directory takes one writer", path.display())]
    Busy {
        /// The run directory.
        path: PathBuf,
        /// Who holds its lock.
        holder: String,
    },
    /// A directory a run would write to holds something else.
    #[error("cannot write a run into {}: {why}", path.display())]
    NotARun {
        /// The directory.
        path: PathBuf,
        /// What is in the way.
        why: String,
    },
    /// A request would need more memory than the limit allows.
    #[error("{what} needs about {} but the limit is {}", ntm::footprint::human_bytes(*needed), ntm::footprint::human_bytes(*limit))]
    TooLarge {
        /// What was asked for.
        what: String,
        /// Estimated bytes.
        needed: f64,
        /// The limit in bytes.
        limit: f64,
    },
    /// A file of a run is not what this program writes.
    #[error("{}: {why}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        why: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A task error.
    #[error(transparent)]
    Task(#[from] ntm_tasks::TaskError),
    /// A model error.
    #[error(transparent)]
    Model(#[from] ntm::NtmError),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<ntm::memory::MemoryError> for TrainError {
    fn from(e: ntm::memory::MemoryError) -> Self {
        TrainError::Model(e.into())
    }
}

impl From<ntm::controller::ControllerError> for TrainError {
    fn from(e: ntm::controller::ControllerError) -> Self {
        TrainError::Model(e.into())
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
