//! [`TaskConfig`], any task's settings as read from a configuration file, and the
//! [`TaskRegistry`] that turns a task's name and settings into the task.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{
    AssociativeRecallTask, CopyTask, MemoryReuseTask, NgramsTask, PrioritySortTask, RepeatCopyTask,
    Size, Task, TaskError,
};

/// The settings of one task: its registered name and any of its options.
///
/// In TOML (or any serde format) the table names the task in a `name` field; the other fields
/// are the task's own options. Options left out take the task's defaults, and an option the task
/// does not know is an error when the config is resolved or built through a [`TaskRegistry`]:
///
/// ```text
/// name = "copy"
/// max_length = 5
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskConfig {
    /// The task's name in the registry (`copy`, `repeat-copy`, ..., or a user's own).
    pub name: String,
    /// The task's own options.
    #[serde(flatten)]
    pub options: toml::Table,
}

impl TaskConfig {
    /// A config that names the task and leaves every option at its default.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            options: toml::Table::new(),
        }
    }

    /// A config from a task's typed settings (`CopyConfig`, ...).
    pub fn from_settings<C: Serialize>(
        name: impl Into<String>,
        settings: &C,
    ) -> Result<Self, TaskError> {
        let name = name.into();
        let options = toml::Table::try_from(settings).map_err(|e| TaskError::BadOptions {
            task: name.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self { name, options })
    }

    /// The paper's settings for the built-in task called `name`.
    pub fn default_for(name: &str) -> Result<TaskConfig, TaskError> {
        TaskRegistry::default().default_config(name)
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Validates the settings and builds the task from the built-in registry.
    pub fn build(&self) -> Result<Box<dyn Task>, TaskError> {
        TaskRegistry::default().build(self)
    }

    /// The options read as the typed settings `C`: fields left out take `C::default()`'s
    /// values, unknown fields are an error if `C` denies them.
    pub fn settings<C: DeserializeOwned>(&self) -> Result<C, TaskError> {
        serde_path_to_error::deserialize(toml::Value::Table(self.options.clone())).map_err(
            |e: serde_path_to_error::Error<toml::de::Error>| TaskError::BadOptions {
                task: self.name.clone(),
                reason: format!("`{}`: {}", e.path(), e.inner().message()),
            },
        )
    }
}

type Build = dyn Fn(&TaskConfig) -> Result<Box<dyn Task>, TaskError> + Send + Sync;
type Defaults = dyn Fn() -> Result<toml::Table, TaskError> + Send + Sync;

/// One entry of a [`TaskRegistry`]: how to build a task from its options, its default options,
/// and the sizes its generalisation is tested at.
#[derive(Clone)]
pub struct TaskKind {
    name: String,
    build: Arc<Build>,
    defaults: Arc<Defaults>,
    eval_sizes: Vec<Size>,
}

impl fmt::Debug for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskKind")
            .field("name", &self.name)
            .field("eval_sizes", &self.eval_sizes)
            .finish_non_exhaustive()
    }
}

impl TaskKind {
    /// A task kind whose options are the serde fields of `C`: `make` builds the task from them.
    ///
    /// `C::default()` gives the default options; mark `C` `#[serde(default)]` so that options
    /// may be left out, and `#[serde(deny_unknown_fields)]` so that a misspelt one is an error.
    pub fn new<C, T>(
        name: impl Into<String>,
        make: impl Fn(C) -> Result<T, TaskError> + Send + Sync + 'static,
    ) -> Self
    where
        C: Default + Serialize + DeserializeOwned + 'static,
        T: Task + 'static,
    {
        let name = name.into();
        let defaults_name = name.clone();
        Self {
            name,
            build: Arc::new(move |config: &TaskConfig| {
                Ok(Box::new(make(config.settings::<C>()?)?) as Box<dyn Task>)
            }),
            defaults: Arc::new(move || {
                Ok(TaskConfig::from_settings(defaults_name.clone(), &C::default())?.options)
            }),
            eval_sizes: Vec::new(),
        }
    }

    /// The sizes `ntm eval` tests generalisation at when none are given.
    pub fn with_eval_sizes(mut self, sizes: Vec<Size>) -> Self {
        self.eval_sizes = sizes;
        self
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sizes generalisation is tested at by default.
    pub fn eval_sizes(&self) -> &[Size] {
        &self.eval_sizes
    }
}

/// The tasks known by name: the paper's five ([`TaskRegistry::default`]) and any a user
/// registers.
///
/// ```
/// use ntm_tasks::{CopyConfig, CopyTask, TaskConfig, TaskKind, TaskRegistry};
///
/// # fn main() -> Result<(), ntm_tasks::TaskError> {
/// let mut tasks = TaskRegistry::default();
/// // A second copy task under another name, with its own defaults.
/// tasks.register(TaskKind::new("short-copy", |c: CopyConfig| {
///     CopyTask::new(CopyConfig { max_length: c.max_length.min(5), ..c })
/// }))?;
/// let task = tasks.build(&TaskConfig::named("short-copy"))?;
/// assert_eq!(task.input_size(), 9);
/// assert!(tasks.build(&TaskConfig::named("kopy")).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TaskRegistry {
    kinds: Vec<TaskKind>,
}

impl Default for TaskRegistry {
    /// The paper's five tasks, in the order of its sections, and memory reuse. Their
    /// generalisation sizes live in the workspace's experiment files (`tasks/<task>.toml`), with
    /// the rest of each task's configuration.
    fn default() -> Self {
        Self {
            kinds: vec![
                TaskKind::new("copy", CopyTask::new),
                TaskKind::new("repeat-copy", RepeatCopyTask::new),
                TaskKind::new("associative-recall", AssociativeRecallTask::new),
                TaskKind::new("ngrams", NgramsTask::new),
                TaskKind::new("priority-sort", PrioritySortTask::new),
                TaskKind::new("memory-reuse", MemoryReuseTask::new),
            ],
        }
    }
}

impl TaskRegistry {
    /// A registry with no tasks.
    pub fn empty() -> Self {
        Self { kinds: Vec::new() }
    }

    /// Adds a task kind; a name already taken is an error.
    pub fn register(&mut self, kind: TaskKind) -> Result<(), TaskError> {
        if self.get(kind.name()).is_some() {
            return Err(TaskError::BadOptions {
                task: kind.name,
                reason: "a task of this name is already registered".into(),
            });
        }
        self.kinds.push(kind);
        Ok(())
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.kinds.iter().map(TaskKind::name).collect()
    }

    /// The kind called `name`.
    pub fn get(&self, name: &str) -> Option<&TaskKind> {
        self.kinds.iter().find(|k| k.name == name)
    }

    fn kind(&self, name: &str) -> Result<&TaskKind, TaskError> {
        self.get(name).ok_or_else(|| TaskError::UnknownTask {
            name: name.to_string(),
            known: self.names().join(", "),
        })
    }

    /// The config of task `name` with every option at its default.
    pub fn default_config(&self, name: &str) -> Result<TaskConfig, TaskError> {
        Ok(TaskConfig {
            name: name.to_string(),
            options: (self.kind(name)?.defaults)()?,
        })
    }

    /// `config` with every option it leaves out filled in from the task's defaults, after
    /// checking that the task exists and accepts the options.
    pub fn resolve(&self, config: &TaskConfig) -> Result<TaskConfig, TaskError> {
        self.build(config)?;
        let mut resolved = self.default_config(&config.name)?;
        for (key, value) in &config.options {
            resolved.options.insert(key.clone(), value.clone());
        }
        Ok(resolved)
    }

    /// Validates the settings and builds the task.
    pub fn build(&self, config: &TaskConfig) -> Result<Box<dyn Task>, TaskError> {
        (self.kind(&config.name)?.build)(config)
    }

    /// The default generalisation sizes of task `name` (empty for an unknown task).
    pub fn eval_sizes(&self, name: &str) -> &[Size] {
        self.get(name).map_or(&[], TaskKind::eval_sizes)
    }
}
