//! [`TaskConfig`]: any task's settings, as read from a configuration file.

use serde::{Deserialize, Serialize};

use crate::{
    AssociativeRecallConfig, AssociativeRecallTask, CopyConfig, CopyTask, NgramsConfig, NgramsTask,
    PrioritySortConfig, PrioritySortTask, RepeatCopyConfig, RepeatCopyTask, Task, TaskError,
};

/// The names of the five tasks, as accepted by [`TaskConfig::default_for`].
pub const TASK_NAMES: [&str; 5] = [
    "copy",
    "repeat-copy",
    "associative-recall",
    "ngrams",
    "priority-sort",
];

/// The settings of any one task, tagged by the task's name.
///
/// In TOML (or any serde format) the table names the task in a `name` field and may give any
/// subset of that task's fields; the rest take the paper's defaults, and an unknown field is an
/// error:
///
/// ```text
/// name = "copy"
/// max_length = 5
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum TaskConfig {
    /// [`CopyTask`].
    Copy(CopyConfig),
    /// [`RepeatCopyTask`].
    RepeatCopy(RepeatCopyConfig),
    /// [`AssociativeRecallTask`].
    AssociativeRecall(AssociativeRecallConfig),
    /// [`NgramsTask`].
    Ngrams(NgramsConfig),
    /// [`PrioritySortTask`].
    PrioritySort(PrioritySortConfig),
}

impl TaskConfig {
    /// The paper's settings for the task called `name` (one of [`TASK_NAMES`]).
    pub fn default_for(name: &str) -> Result<TaskConfig, TaskError> {
        Ok(match name {
            "copy" => TaskConfig::Copy(CopyConfig::default()),
            "repeat-copy" => TaskConfig::RepeatCopy(RepeatCopyConfig::default()),
            "associative-recall" => {
                TaskConfig::AssociativeRecall(AssociativeRecallConfig::default())
            }
            "ngrams" => TaskConfig::Ngrams(NgramsConfig::default()),
            "priority-sort" => TaskConfig::PrioritySort(PrioritySortConfig::default()),
            _ => {
                return Err(TaskError::UnknownTask {
                    name: name.to_owned(),
                })
            }
        })
    }

    /// The task's name (one of [`TASK_NAMES`]).
    pub fn name(&self) -> &'static str {
        match self {
            TaskConfig::Copy(_) => TASK_NAMES[0],
            TaskConfig::RepeatCopy(_) => TASK_NAMES[1],
            TaskConfig::AssociativeRecall(_) => TASK_NAMES[2],
            TaskConfig::Ngrams(_) => TASK_NAMES[3],
            TaskConfig::PrioritySort(_) => TASK_NAMES[4],
        }
    }

    /// Validates the settings and builds the task.
    pub fn build(&self) -> Result<Box<dyn Task>, TaskError> {
        Ok(match self {
            TaskConfig::Copy(c) => Box::new(CopyTask::new(c.clone())?),
            TaskConfig::RepeatCopy(c) => Box::new(RepeatCopyTask::new(c.clone())?),
            TaskConfig::AssociativeRecall(c) => Box::new(AssociativeRecallTask::new(c.clone())?),
            TaskConfig::Ngrams(c) => Box::new(NgramsTask::new(c.clone())?),
            TaskConfig::PrioritySort(c) => Box::new(PrioritySortTask::new(c.clone())?),
        })
    }
}
