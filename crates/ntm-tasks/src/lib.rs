//! The algorithmic tasks of the Neural Turing Machine paper (Graves, Wayne and Danihelka, 2014):
//! copy, repeat copy, associative recall, dynamic N-grams and priority sort; and memory reuse,
//! several copies in one episode with more items than memory rows (after the DNC paper).
//!
//! Each task implements [`Task`] and generates [`Batch`]es of episodes as plain, time-major
//! `f32` arrays ([`Sequence`], `[steps, batch, channels]`): the inputs, the targets and a mask
//! that is 1 on the scored (output) steps. This crate knows nothing of the model: it depends on
//! neither candle nor any NTM crate, so the arrays can feed any implementation.
//!
//! All episodes of one batch share their length (drawn once per batch from the caller's random
//! number generator), so batches hold no padding, and the same seed always gives the same
//! batches. A [`Size`] overrides the training distribution for generalisation tests, and
//! [`TaskConfig`] reads any task's settings from a configuration file.
//!
//! ```
//! use ntm_tasks::{CopyConfig, CopyTask, Size, Task};
//! use rand::SeedableRng;
//!
//! # fn main() -> Result<(), ntm_tasks::TaskError> {
//! let task = CopyTask::new(CopyConfig::default())?; // 8 bits, lengths 1..=20
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let batch = task.batch(4, Some(Size::Length(5)), &mut rng)?;
//!
//! // 5 data steps, a delimiter, 5 output steps; 9 input channels, 8 target channels.
//! assert_eq!(batch.inputs.shape(), (11, 4, 9));
//! assert_eq!(batch.targets.shape(), (11, 4, 8));
//! assert_eq!(batch.scored_steps(), 5);
//! // The target of output step 6 + t is the input of step t.
//! for t in 0..5 {
//!     assert_eq!(&batch.targets.row(6 + t, 0)[..], &batch.inputs.row(t, 0)[..8]);
//! }
//! # Ok(())
//! # }
//! ```

mod associative_recall;
mod config;
mod copy;
mod error;
mod memory_reuse;
mod ngrams;
mod priority_sort;
mod repeat_copy;
mod sequence;
mod size;
mod task;

pub use associative_recall::{AssociativeRecallConfig, AssociativeRecallTask};
pub use config::{TaskConfig, TaskKind, TaskRegistry};
pub use copy::{CopyConfig, CopyTask};
pub use error::TaskError;
pub use memory_reuse::{MemoryReuseConfig, MemoryReuseTask};
pub use ngrams::{ngram_optimal_bits, NgramTable, NgramsConfig, NgramsTask, MAX_NGRAM_ORDER};
pub use priority_sort::{PrioritySortConfig, PrioritySortTask};
pub use repeat_copy::{RepeatCopyConfig, RepeatCopyTask};
pub use sequence::{Batch, Sequence};
pub use size::Size;
pub use task::{random_bits, CostKind, Task};

/// The random number generator crate the [`Task`] trait is written against, so that a task
/// implemented elsewhere uses the same version.
pub use rand;
