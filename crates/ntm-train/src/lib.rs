//! Training for NTM sequence models.
//!
//! A [`Trainer`] fits any [`ntm::SequenceModel`] to any [`ntm_tasks::Task`]: batches from a seeded
//! stream, the masked binary cross-entropy from logits in its stable form, RMSProp (Graves 2013)
//! or Adam, per-element and global-norm clipping, validation on a fixed held-out set, metrics as
//! JSON lines, and atomic checkpoints from which `--resume` continues exactly where a run
//! stopped. A [`RunConfig`] describes a whole run and reads from TOML.
//!
//! ```
//! use candle_core::Device;
//! use ntm::ModelKind;
//! use ntm_train::{RunConfig, Trainer};
//!
//! # fn main() -> Result<(), ntm_train::TrainError> {
//! let sets = ["model.memory.rows=16".to_string(), "model.size=16".to_string(), "train.batch_size=4".to_string(),
//!             "train.val_sequences=8".to_string(), "task.max_length=3".to_string()];
//! let config = RunConfig::resolve(Some("copy"), Some(ModelKind::LstmNtm), None, &sets)?;
//! let mut trainer = Trainer::new(config, &Device::Cpu)?;
//! let first = trainer.step()?;
//! assert_eq!((first.step, first.sequences), (1, 4));
//! assert!(first.loss_bits.is_finite());
//! let val = trainer.validate()?;
//! assert_eq!(val.sequences, 8);
//! # Ok(())
//! # }
//! ```

pub mod checkpoint;
pub mod config;
pub mod loss;
pub mod optim;
pub mod trainer;

use std::path::PathBuf;

pub use config::{default_model, paper_model, RunConfig, TrainConfig};
pub use optim::{Optimizer, OptimizerConfig};
pub use trainer::{
    evaluate, load_run, read_metrics, trace, EvalStats, LoadedRun, MetricsRecord, Observer, Quiet,
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
    /// The loss or a gradient became NaN or infinite.
    #[error("the {what} became non-finite at step {step}; stopping (the last checkpoint is kept)")]
    NonFinite {
        /// The update that failed.
        step: u64,
        /// `loss` or `gradient`.
        what: &'static str,
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

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
