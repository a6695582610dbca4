//! Experiment sweeps over the paper's tasks: the library behind `cargo xtask`.
//!
//! An experiment file in `tasks/` names a task, the models to compare with the paper's
//! hyperparameters, the generalisation sizes, and profiles (`quick`, `paper`) that set budgets.
//! [`Experiment::runs`] expands a file into one [`RunSpec`] per (model, seed); [`sweep::run_all`]
//! runs each as its own `ntm train` process; [`report::write_report`] turns the run directories
//! into `REPORT.md` with tables and figures; [`slurm::script`] writes a job array instead, and
//! `slurm_check` runs a tiny one through a one-node SLURM cluster on this machine.
//! [`cuda`] installs a pinned CUDA compiler toolchain for `cargo xtask cuda-setup`.
//!
//! ```
//! let text = r#"
//! task = "copy"
//! eval = ["20", "40"]
//! show = "40"
//! [models.lstm-ntm]
//! size = 100
//! layers = 1
//! heads = 1
//! lr = 1e-4
//! [profiles.quick]
//! seeds = 2
//! eval_sequences = 100
//! set = ["train.max_seconds=60"]
//! "#;
//! use xtask::Sweep;
//! let experiment = xtask::Experiment::parse(text).unwrap();
//! let runs = experiment.runs("quick", None).unwrap();
//! assert_eq!(runs.len(), 2);
//! assert_eq!(runs[1].dir, std::path::Path::new("runs/copy/lstm-ntm/seed1"));
//! assert!(runs[0].train_args(std::path::Path::new("out")).contains(&"train.optimizer.lr=0.0001".to_string()));
//! ```

pub mod cuda;
pub mod experiment;
pub mod faults;
pub mod report;
pub mod slurm;
#[cfg(unix)]
pub mod slurm_check;
pub mod sweep;

pub use experiment::{Experiment, RunSpec, Sweep};

/// Errors of the sweep tools.
#[derive(Debug, thiserror::Error)]
pub enum XtaskError {
    /// An experiment file is invalid.
    #[error("{file}: {message}")]
    Experiment {
        /// The file (or `<text>`).
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A figure could not be drawn.
    #[error(transparent)]
    Plot(#[from] ntm_plot::PlotError),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, XtaskError>;

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> XtaskError + '_ {
    move |source| XtaskError::Io {
        path: path.to_path_buf(),
        source,
    }
}
