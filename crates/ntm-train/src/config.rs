//! The description of one training run: task, model, training hyperparameters and seed, with
//! the embedded defaults of every task and `key=value` overrides.

use candle_core::Device;
use ntm::{ModelConfig, ModelRegistry, SequenceModel, NO_MEMORY};
use ntm_tasks::{Size, Task, TaskConfig, TaskRegistry};
use serde::{Deserialize, Serialize};

use crate::experiment;
use crate::optim::{OptimizerConfig, Schedule};
use crate::{Result, TrainError};

/// Training hyperparameters and budgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Sequences per update.
    pub batch_size: usize,
    /// The optimiser.
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes over the run (constant by default).
    #[serde(skip_serializing_if = "Schedule::is_constant")]
    pub schedule: Schedule,
    /// Clip each gradient component to `+-clip_value` (0 disables; the paper uses 10).
    pub clip_value: f64,
    /// Rescale gradients whose global norm exceeds `clip_norm` (0 disables; Collier & Beel: 50).
    pub clip_norm: f64,
    /// Stop after this many training sequences.
    pub max_sequences: u64,
    /// Stop after this many seconds of wall clock (0: no limit).
    pub max_seconds: f64,
    /// Stop once the validation cost is below this for `patience` evaluations in a row
    /// (0 disables). In bits per sequence.
    pub target_cost: f64,
    /// Consecutive evaluations below `target_cost` needed to stop.
    pub patience: u32,
    /// Evaluate on the validation set every this many updates.
    pub eval_every: u64,
    /// Size of the fixed validation set.
    pub val_sequences: usize,
    /// Sequences per validation batch.
    pub val_batch: usize,
    /// Append a metrics line every this many updates.
    pub log_every: u64,
    /// Write a checkpoint every this many updates (and at the end).
    pub checkpoint_every: u64,
    /// Parts each batch is split into, whose gradients are summed: parts run in parallel on
    /// the threads a run is given ([`Trainer::set_threads`](crate::Trainer::set_threads)), and
    /// the result does not depend on how many threads there are. 1 (the default) runs the
    /// batch whole.
    pub shards: usize,
}

impl Default for TrainConfig {
    /// The NTM paper's optimiser (RMSProp, lr 1e-4, momentum 0.9, components clipped to 10) on
    /// single sequences, with Collier & Beel's norm clipping as a guard. On the copy task this
    /// converges in about 10k sequences.
    fn default() -> Self {
        Self {
            batch_size: 1,
            optimizer: OptimizerConfig::Rmsprop {
                lr: 1e-4,
                alpha: 0.95,
                momentum: 0.9,
                eps: 1e-4,
            },
            schedule: Schedule::default(),
            clip_value: 10.0,
            clip_norm: 50.0,
            max_sequences: 1_000_000,
            max_seconds: 0.0,
            target_cost: 0.0,
            patience: 1,
            eval_every: 1000,
            val_sequences: 1000,
            val_batch: 50,
            log_every: 100,
            checkpoint_every: 2000,
            shards: 1,
        }
    }
}

/// Everything that defines a run. Serialised as the run directory's `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The one seed every random choice derives from.
    #[serde(default)]
    pub seed: u64,
    /// The task.
    pub task: TaskConfig,
    /// The model; `None` for a run whose model was built in code and handed to
    /// [`Trainer::from_parts`](crate::Trainer::from_parts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelConfig>,
    /// Training.
    #[serde(default)]
    pub train: TrainConfig,
    /// How `ntm eval` and `ntm show` run the trained model unless told otherwise.
    #[serde(default, skip_serializing_if = "EvalConfig::is_default")]
    pub eval: EvalConfig,
}

/// How a trained model is evaluated and shown by default: part of the run's configuration, so
/// that `ntm eval --run DIR` alone tests a run as its experiment meant, but no part of what is
/// trained (a resumed run may change it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Memory rows to run the trained model with, when not the rows it trained with (at least
    /// those; `ntm eval --rows` overrides it): a model trained on a small memory, tested on
    /// the paper's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
}

impl EvalConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A run's task and model: what a [`Registry`] builds from a [`RunConfig`], and what a factory
/// given to [`load_run_with`](crate::load_run_with) returns.
pub type RunParts = (Box<dyn Task>, Box<dyn SequenceModel>);

/// The tasks, controllers and memories a [`RunConfig`] can name: the built-in ones by default,
/// and any a user registers.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Controllers and memories.
    pub models: ModelRegistry,
    /// Tasks.
    pub tasks: TaskRegistry,
}

/// The model a task trains when none is named: its experiment file's `default_model` (the
/// feedforward NTM for associative recall, where the paper found it learns about three times
/// faster), and the LSTM NTM for tasks without a file.
pub fn default_model(task: &str) -> &'static str {
    match experiment::builtin(task) {
        Ok(Some(e)) => &e.default_model,
        _ => experiment::DEFAULT_MODEL,
    }
}

impl Registry {
    /// The embedded default run of `task` with the model called `model`: the model's preset
    /// and the task's defaults, the paper's optimiser ([`TrainConfig::default`]) stopping after
    /// three validations in a row under 0.1 bits per sequence, then the task's experiment file
    /// (`tasks/<task>.toml`, see [`experiment`]): its `set` (options and stopping rule), and
    /// the paper's sizes, heads and learning rate of the model, or of the model nearest to it
    /// ([`Experiment::default_sets`](experiment::Experiment::default_sets)). Tasks without a file
    /// keep the presets.
    pub fn default_run(&self, task: &str, model: &str) -> Result<RunConfig> {
        let train = TrainConfig {
            target_cost: 0.1,
            patience: 3,
            ..TrainConfig::default()
        };
        let preset = self.models.preset(model)?;
        let recurrent = self.models.recurrent(&preset);
        let memory = preset.memory.kind.clone();
        let base = RunConfig {
            seed: 0,
            task: self.tasks.default_config(task)?,
            model: Some(preset),
            train,
            eval: EvalConfig::default(),
        };
        let Some(file) = experiment::builtin(task)? else {
            return Ok(base);
        };
        let sets = file.default_sets(model, &memory, recurrent);
        let mut table = toml::Table::try_from(base)
            .map_err(|e| TrainError::Config(format!("cannot serialise defaults: {e}")))?;
        for set in &sets {
            apply_set(&mut table, set)
                .map_err(|e| TrainError::Config(format!("tasks/{task}.toml: {e}")))?;
        }
        from_table(table)
    }

    /// The sizes `ntm eval` tests task `task` at when none are given: its experiment file's,
    /// else those its kind was registered with.
    pub fn eval_sizes(&self, task: &str) -> Result<Vec<Size>> {
        match experiment::builtin(task)? {
            Some(file) => file.eval_sizes(),
            None => Ok(self.tasks.eval_sizes(task).to_vec()),
        }
    }

    /// Builds a run from, in increasing precedence: the embedded defaults, a TOML file's text,
    /// and `key=value` overrides (`train.batch_size=16`, `model.memory.rows=64`).
    ///
    /// `task` and `model` (from the command line) choose the defaults; when absent they come
    /// from the file (`task.name`, `model.controller.kind` and `model.memory.kind`), and the
    /// model defaults to [`default_model`]. A `model` given here wins over the file's kinds.
    pub fn resolve(
        &self,
        task: Option<&str>,
        model: Option<&str>,
        file: Option<&str>,
        sets: &[String],
    ) -> Result<RunConfig> {
        let mut overlay: toml::Table = match file {
            Some(text) => toml::from_str(text).map_err(|e| {
                let line = e.span().map_or(0, |s| {
                    text[..s.start.min(text.len())].lines().count().max(1)
                });
                TrainError::Config(format!("bad TOML at line {line}: {}", e.message()))
            })?,
            None => toml::Table::new(),
        };
        upgrade_legacy_model(&mut overlay);
        for set in sets {
            apply_set(&mut overlay, set)?;
        }
        let overlay_task = overlay
            .get("task")
            .and_then(|t| t.get("name"))
            .and_then(|n| n.as_str());
        let task = match (task, overlay_task) {
            (Some(a), Some(b)) if a != b => {
                return Err(TrainError::Config(format!(
                    "the config is for task `{b}` but the task asked for is `{a}`"
                )))
            }
            (Some(t), _) | (None, Some(t)) => t.to_string(),
            (None, None) => {
                return Err(TrainError::Config(
                    "no task given: pass --task or set task.name".into(),
                ))
            }
        };
        let model = self.model_name(&task, model, &mut overlay)?;
        let defaults = self.default_run(&task, &model)?;
        let mut merged = toml::Table::try_from(defaults)
            .map_err(|e| TrainError::Config(format!("cannot serialise defaults: {e}")))?;
        let own_eval_rows = overlay.get("eval").and_then(|e| e.get("rows")).is_some();
        merge(&mut merged, overlay);
        let mut config = from_table(merged)?;
        // A default's `eval.rows` (the paper's memory, for a model that trains on fewer rows)
        // gives way to a memory the caller makes larger than it: the model then runs on the
        // rows it trains with. One the caller sets is checked.
        if let (Some(rows), Some(m), false) = (config.eval.rows, &config.model, own_eval_rows) {
            if memory_rows(m).is_some_and(|trained| (rows as i64) < trained) {
                config.eval.rows = None;
            }
        }
        self.check(config)
    }

    /// The name of the model a run asks for, from the command line's `model`, else the kinds in
    /// `overlay`, else the task's default; the kinds in `overlay` are made to agree with it.
    fn model_name(
        &self,
        task: &str,
        model: Option<&str>,
        overlay: &mut toml::Table,
    ) -> Result<String> {
        let kind = |overlay: &toml::Table, part: &str| {
            overlay
                .get("model")
                .and_then(|m| m.get(part))
                .and_then(|p| p.get("kind"))
                .and_then(|k| k.as_str())
                .map(str::to_string)
        };
        let (controller, memory) = match model {
            Some(name) => {
                let (c, m) = self.models.split_name(name)?;
                (c.to_string(), m.to_string())
            }
            None => {
                let (c, m) = self.models.split_name(default_model(task))?;
                (
                    kind(overlay, "controller").unwrap_or_else(|| c.to_string()),
                    kind(overlay, "memory").unwrap_or_else(|| m.to_string()),
                )
            }
        };
        if let Some(model) = overlay.get_mut("model").and_then(|m| m.as_table_mut()) {
            // The memory's options belong to its kind: another kind's are dropped, and a model
            // without memory ignores them (a sweep sets them for all its models).
            if memory == NO_MEMORY || kind_of(model, "memory").is_some_and(|k| k != memory) {
                model.remove("memory");
            }
            if let Some(c) = model.get_mut("controller").and_then(|c| c.as_table_mut()) {
                c.insert("kind".into(), toml::Value::String(controller.clone()));
            }
        }
        Ok(if memory == NO_MEMORY {
            controller
        } else {
            format!("{controller}-{memory}")
        })
    }

    /// Checks a whole configuration and fills in the task's and memory's defaults.
    pub fn check(&self, mut config: RunConfig) -> Result<RunConfig> {
        config.task = self.tasks.resolve(&config.task)?;
        if let Some(model) = &config.model {
            config.model = Some(self.models.resolve(model)?);
        }
        config.validate()?;
        Ok(config)
    }

    /// The task and a freshly initialised model of `config` (drawn from its seed), on `device`.
    pub fn build(&self, config: &RunConfig, device: &Device) -> Result<RunParts> {
        let task = self.tasks.build(&config.task)?;
        let Some(model) = &config.model else {
            return Err(TrainError::Config(
                "the run has no model config: its model was built in code (Trainer::from_parts); \
                 rebuild it and load the run with ntm_train::load_run_with"
                    .into(),
            ));
        };
        model.dtype.check(device)?;
        let model = self.models.build(
            model,
            task.input_size(),
            task.output_size(),
            config.seed,
            model.dtype.dtype(),
            device,
        )?;
        Ok((task, model))
    }
}

fn kind_of<'a>(table: &'a toml::Table, part: &str) -> Option<&'a str> {
    table.get(part)?.get("kind")?.as_str()
}

/// Rewrites a `[model]` table of the earlier single-name form (`kind = "lstm-ntm"`, `size`,
/// `layers`, memory options) into the controller and memory tables, so that run directories
/// written before the split still load.
fn upgrade_legacy_model(overlay: &mut toml::Table) {
    let Some(model) = overlay.get_mut("model").and_then(|m| m.as_table_mut()) else {
        return;
    };
    let Some(toml::Value::String(name)) = model.remove("kind") else {
        return;
    };
    let (controller, memory) = match name.split_once('-') {
        Some((c, m)) => (c.to_string(), m.to_string()),
        None => (name, NO_MEMORY.to_string()),
    };
    let mut c = toml::Table::new();
    c.insert("kind".into(), toml::Value::String(controller));
    for key in ["size", "layers"] {
        if let Some(v) = model.remove(key) {
            c.insert(key.into(), v);
        }
    }
    let mut m = match model.remove("memory") {
        Some(toml::Value::Table(t)) if memory != NO_MEMORY => t,
        _ => toml::Table::new(),
    };
    m.remove("fused");
    m.insert("kind".into(), toml::Value::String(memory));
    model.insert("controller".into(), toml::Value::Table(c));
    model.insert("memory".into(), toml::Value::Table(m));
}

impl RunConfig {
    /// The embedded default run of `task` with the model called `model`
    /// ([`Registry::default_run`] of the built-in registry).
    pub fn default_for(task: &str, model: &str) -> Result<Self> {
        Registry::default().default_run(task, model)
    }

    /// [`Registry::resolve`] with the built-in tasks, controllers and memories.
    pub fn resolve(
        task: Option<&str>,
        model: Option<&str>,
        file: Option<&str>,
        sets: &[String],
    ) -> Result<Self> {
        Registry::default().resolve(task, model, file, sets)
    }

    /// Parses a complete run configuration (a run directory's `config.toml`).
    pub fn from_toml(text: &str) -> Result<Self> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| TrainError::Config(e.message().to_string()))?;
        upgrade_legacy_model(&mut table);
        let config = from_table(table)?;
        config.validate()?;
        Ok(config)
    }

    /// The model's name (`lstm-ntm`, ...), or `custom` for a model built in code.
    pub fn model_name(&self) -> String {
        self.model
            .as_ref()
            .map_or_else(|| "custom".to_string(), ModelConfig::name)
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|e| TrainError::Config(format!("cannot serialise config: {e}")))
    }

    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        let Some(rows) = self.eval.rows else {
            return Ok(());
        };
        let bad = |why: String| Err(TrainError::Config(format!("eval.rows = {rows}: {why}")));
        // A model built in code (`None`): its rows are not known here; loading checks them.
        let Some(model) = &self.model else {
            return Ok(());
        };
        if !model.has_memory() {
            return bad("the model has no memory".into());
        }
        match memory_rows(model) {
            Some(trained) if (rows as i64) < trained => bad(format!(
                "the rows `ntm eval` runs the model with are fewer than the {trained} it trains \
                 with (a memory only grows): set eval.rows too"
            )),
            _ => Ok(()),
        }
    }
}

/// The rows of a model's memory, where its kind has a `rows` option.
pub fn memory_rows(model: &ModelConfig) -> Option<i64> {
    model.memory.options.get("rows")?.as_integer()
}

impl TrainConfig {
    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<()> {
        let t = self;
        let problem = if t.batch_size == 0 {
            Some("train.batch_size must be >= 1")
        } else if t.shards == 0 || t.shards > t.batch_size {
            Some("train.shards must be between 1 and train.batch_size")
        } else if t.val_sequences == 0 || t.val_batch == 0 {
            Some("train.val_sequences and train.val_batch must be >= 1")
        } else if t.eval_every == 0 || t.log_every == 0 || t.checkpoint_every == 0 {
            Some("train.eval_every, train.log_every and train.checkpoint_every must be >= 1")
        } else if !(t.clip_value >= 0.0
            && t.clip_norm >= 0.0
            && t.max_seconds >= 0.0
            && t.target_cost >= 0.0)
        {
            Some("clip_value, clip_norm, max_seconds and target_cost must be >= 0")
        } else {
            None
        };
        match problem {
            Some(p) => Err(TrainError::Config(p.into())),
            None => t.schedule.validate(),
        }
    }
}

/// The keys a resumed run may change: budgets, how often it writes and how it is evaluated,
/// nothing that changes what is trained.
pub const RESUMABLE_KEYS: [&str; 5] = [
    "train.max_sequences",
    "train.max_seconds",
    "train.log_every",
    "train.checkpoint_every",
    "eval.rows",
];

/// One value of a run's configuration that differs between two versions of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// The dotted key, `train.max_sequences`.
    pub key: String,
    /// The value before, as TOML (`None`: absent).
    pub from: Option<String>,
    /// The value after.
    pub to: Option<String>,
}

impl ConfigChange {
    /// Whether a resumed run may make this change ([`RESUMABLE_KEYS`]).
    pub fn is_resumable(&self) -> bool {
        RESUMABLE_KEYS.contains(&self.key.as_str())
    }
}

impl std::fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".into());
        write!(
            f,
            "`{}` from {} to {}",
            self.key,
            show(&self.from),
            show(&self.to)
        )
    }
}

impl RunConfig {
    /// Every value that differs between `self` and `other`, by dotted key, in key order.
    pub fn changes_to(&self, other: &RunConfig) -> Result<Vec<ConfigChange>> {
        let flat = |c: &RunConfig| -> Result<std::collections::BTreeMap<String, String>> {
            let value = toml::Value::try_from(c)
                .map_err(|e| TrainError::Config(format!("cannot serialise config: {e}")))?;
            let mut out = std::collections::BTreeMap::new();
            flatten("", &value, &mut out);
            Ok(out)
        };
        let (a, b) = (flat(self)?, flat(other)?);
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        Ok(keys
            .into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| ConfigChange {
                key: k.clone(),
                from: a.get(k).cloned(),
                to: b.get(k).cloned(),
            })
            .collect())
    }

    /// The first change from `self` to `other` of a key outside [`RESUMABLE_KEYS`]: one that
    /// a run cannot take without becoming another run.
    pub fn fixed_change(&self, other: &RunConfig) -> Result<Option<ConfigChange>> {
        Ok(self
            .changes_to(other)?
            .into_iter()
            .find(|c| !c.is_resumable()))
    }

    /// The changes from `self` (a run's saved configuration) to `other` that a resumed run may
    /// make; any other change is an error that names its key.
    pub fn resume_changes(&self, other: &RunConfig) -> Result<Vec<ConfigChange>> {
        let changes = self.changes_to(other)?;
        if let Some(bad) = changes.iter().find(|c| !c.is_resumable()) {
            return Err(TrainError::Config(format!(
                "a resumed run cannot change {bad}: the run was trained with the first; only {} may change on resume",
                RESUMABLE_KEYS.join(", ")
            )));
        }
        Ok(changes)
    }
}

/// Writes every leaf of `value` into `out` under its dotted key; arrays are leaves.
fn flatten(
    prefix: &str,
    value: &toml::Value,
    out: &mut std::collections::BTreeMap<String, String>,
) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.to_string());
        }
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces. A table
/// whose `kind` changes (the optimiser) is replaced whole, since its fields depend on the kind.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o))
                if o.get("kind").is_none() || o.get("kind") == b.get("kind") =>
            {
                merge(b, o)
            }
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// A run configuration from its table; an error names the key (`train.batch_size`).
fn from_table(table: toml::Table) -> Result<RunConfig> {
    // `merge` replaces a table whole when its `kind` changes (the optimiser), so a field missing
    // from a table with a kind is most often one the old kind had; say so.
    let copy = table.clone();
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(
        |e: serde_path_to_error::Error<toml::de::Error>| {
            let path = e.path().to_string();
            let mut message = format!("`{path}`: {}", e.inner().message());
            let has_kind = path
                .split('.')
                .try_fold(&copy, |t, key| t.get(key)?.as_table())
                .is_some_and(|t| t.contains_key("kind"));
            if has_kind && message.contains("missing field") {
                message.push_str(
                    " (a new `kind` keeps none of the old kind's fields: give them with it)",
                );
            }
            TrainError::Config(message)
        },
    )
}

/// Applies `a.b.c=value`; the value is read as TOML (`3`, `1e-4`, `true`, `[100, 100]`,
/// `"adam"`) and otherwise taken as a bare string (`adam`).
fn apply_set(table: &mut toml::Table, set: &str) -> Result<()> {
    let (path, raw) = set
        .split_once('=')
        .ok_or_else(|| TrainError::Config(format!("`--set {set}`: expected key=value")))?;
    let value = toml::from_str::<toml::Table>(&format!("v = {}", raw.trim()))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(TrainError::Config(format!(
            "`--set {set}`: empty key (expected key=value, like train.batch_size=8)"
        )));
    }
    let Some((last, parents)) = keys.split_last() else {
        return Err(TrainError::Config(format!("`--set {set}`: empty key")));
    };
    let mut node = table;
    for key in parents {
        node = node
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| TrainError::Config(format!("`--set {set}`: `{key}` is not a table")))?;
    }
    node.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_and_model_has_a_default_that_round_trips() {
        let registry = Registry::default();
        assert_eq!(
            registry.models.names(),
            [
                "ff", "lstm", "gru", "ff-ntm", "ff-dnc", "lstm-ntm", "lstm-dnc", "gru-ntm",
                "gru-dnc"
            ]
            .map(String::from)
        );
        for task in registry.tasks.names() {
            for model in registry.models.names() {
                let c = registry.default_run(task, &model).unwrap();
                assert_eq!(c.model_name(), model);
                assert_eq!(RunConfig::from_toml(&c.to_toml().unwrap()).unwrap(), c);
            }
        }
    }

    #[test]
    fn file_and_overrides_take_precedence() {
        let file = "seed = 3\n[model.controller]\nsize = 64\n[train]\nbatch_size = 8\n";
        let sets = vec![
            "train.batch_size=4".to_string(),
            "train.optimizer.lr=0.01".to_string(),
            "model.memory.rows=32".to_string(),
            "task.max_length=5".to_string(),
        ];
        let c = RunConfig::resolve(Some("copy"), Some("ff-ntm"), Some(file), &sets).unwrap();
        assert_eq!(c.seed, 3);
        let model = c.model.clone().unwrap();
        assert_eq!(model.controller.size, 64);
        assert_eq!(model.name(), "ff-ntm");
        assert_eq!(model.memory.options["rows"].as_integer(), Some(32));
        assert_eq!(model.memory.options["width"].as_integer(), Some(20));
        assert_eq!(c.train.batch_size, 4);
        assert_eq!(c.train.optimizer.lr(), 0.01);
        assert_eq!(
            c.task.settings::<ntm_tasks::CopyConfig>().unwrap(),
            ntm_tasks::CopyConfig {
                max_length: 5,
                ..Default::default()
            }
        );
    }

    #[test]
    fn switching_the_optimizer_kind_drops_the_old_fields() {
        let sets = [
            "train.optimizer.kind=rmsprop".to_string(),
            "train.optimizer.lr=1e-4".to_string(),
        ];
        let c = RunConfig::resolve(Some("copy"), None, None, &sets).unwrap();
        assert_eq!(
            c.train.optimizer,
            OptimizerConfig::Rmsprop {
                lr: 1e-4,
                alpha: 0.95,
                momentum: 0.9,
                eps: 1e-4
            }
        );
    }

    #[test]
    fn a_new_kind_without_its_fields_is_an_error_that_says_why() {
        let sets = ["train.optimizer.kind=adam".to_string()];
        let err = RunConfig::resolve(Some("copy"), None, None, &sets)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train.optimizer") && err.contains("lr") && err.contains("new `kind`"),
            "{err}"
        );
        // A missing field elsewhere gets no such hint.
        let err = RunConfig::from_toml("[task]\nwidth = 8\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field"), "{err}");
        assert!(!err.contains("new `kind`"), "{err}");
    }

    #[test]
    fn the_kinds_can_come_from_sets_and_pick_the_paper_model() {
        let set = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = RunConfig::resolve(Some("copy"), None, None, &set(&["model.memory.kind=none"]))
            .unwrap();
        let model = c.model.unwrap();
        assert_eq!(
            (model.name(), model.controller.size, model.controller.layers),
            ("lstm".to_string(), 256, 3)
        );
        let c = RunConfig::resolve(
            Some("priority-sort"),
            None,
            None,
            &set(&["model.controller.kind=ff"]),
        )
        .unwrap();
        let model = c.model.unwrap();
        assert_eq!(model.name(), "ff-ntm");
        assert_eq!(model.controller.size, 512);
        assert_eq!(model.memory.options["read_heads"].as_integer(), Some(8));
    }

    #[test]
    fn the_command_line_model_wins_over_the_file() {
        let file = "[model.controller]\nkind = \"ff\"\nsize = 30\n[model.memory]\nkind = \"ntm\"\nrows = 16\n";
        let c = RunConfig::resolve(Some("copy"), Some("lstm"), Some(file), &[]).unwrap();
        let model = c.model.unwrap();
        assert_eq!(model.name(), "lstm");
        assert_eq!(model.controller.size, 30);
        assert!(model.memory.options.is_empty());
    }

    #[test]
    fn recall_defaults_to_the_feedforward_ntm() {
        let c = RunConfig::resolve(Some("associative-recall"), None, None, &[]).unwrap();
        let model = c.model.unwrap();
        assert_eq!(
            (model.name(), model.controller.size),
            ("ff-ntm".to_string(), 256)
        );
        assert_eq!(model.memory.options["read_heads"].as_integer(), Some(4));
        let c = RunConfig::resolve(Some("copy"), None, None, &[]).unwrap();
        assert_eq!(c.model_name(), "lstm-ntm");
    }

    fn model_of(r: &Registry, task: &str, model: &str) -> ModelConfig {
        r.default_run(task, model).unwrap().model.unwrap()
    }

    #[test]
    fn a_memory_kind_without_a_spec_borrows_only_the_controller_and_learning_rate() {
        use ntm::memory::{MemoryKind, NtmMemory, NtmMemoryConfig};
        let mut r = Registry::default();
        r.models
            .memories
            .register(MemoryKind::new("plain", |p, c: &NtmMemoryConfig| {
                NtmMemory::new(p, c)
            }))
            .unwrap();
        let c = r.default_run("priority-sort", "lstm-plain").unwrap();
        let model = c.model.unwrap();
        // The LSTM NTM's controller (100 x 2) and learning rate, not its five heads.
        assert_eq!((model.controller.size, model.controller.layers), (100, 2));
        assert_eq!(c.train.optimizer.lr(), 3e-5);
        assert_eq!(model.memory.options["read_heads"].as_integer(), Some(1));
    }

    #[test]
    fn paper_models_follow_the_table() {
        let r = Registry::default();
        let heads = |m: &ModelConfig| m.memory.options["write_heads"].as_integer();
        let sort_ff = model_of(&r, "priority-sort", "ff-ntm");
        assert_eq!((sort_ff.controller.size, heads(&sort_ff)), (512, Some(8)));
        let sort_lstm = model_of(&r, "priority-sort", "lstm-ntm");
        assert_eq!(
            (
                sort_lstm.controller.size,
                sort_lstm.controller.layers,
                heads(&sort_lstm)
            ),
            (100, 2, Some(5))
        );
        let recall_lstm = model_of(&r, "associative-recall", "lstm");
        assert_eq!(
            (recall_lstm.controller.size, recall_lstm.controller.layers),
            (256, 3)
        );
    }

    #[test]
    fn dnc_models_take_their_own_sizes_from_the_table() {
        let r = Registry::default();
        let option = |m: &ModelConfig, key: &str| m.memory.options[key].as_integer();
        let copy = model_of(&r, "copy", "lstm-dnc");
        assert_eq!(copy.name(), "lstm-dnc");
        assert_eq!(copy.controller.size, 100);
        for (key, value) in [
            ("rows", 128),
            ("width", 20),
            ("read_heads", 1),
            ("write_heads", 1),
        ] {
            assert_eq!(option(&copy, key), Some(value), "{key}");
        }
        // A DNC without a spec of its own takes the other controller's DNC spec: recall's
        // four read heads and one write head rather than the feedforward NTM's four of each.
        let recall = model_of(&r, "associative-recall", "ff-dnc");
        assert_eq!(recall.controller.kind, "ff");
        assert_eq!(recall.controller.size, 100);
        assert_eq!(option(&recall, "read_heads"), Some(4));
        assert_eq!(option(&recall, "write_heads"), Some(1));
        let ntm = model_of(&r, "associative-recall", "ff-ntm");
        assert_eq!(option(&ntm, "write_heads"), Some(4));
        // From the command line's name, with an override on top.
        let sets = ["model.memory.rows=64".to_string()];
        let c = RunConfig::resolve(Some("copy"), Some("gru-dnc"), None, &sets).unwrap();
        let model = c.model.unwrap();
        assert_eq!(
            (model.name(), option(&model, "rows")),
            ("gru-dnc".into(), Some(64))
        );
        let bad = ["model.memory.shift_range=1".to_string()];
        let err = RunConfig::resolve(Some("copy"), Some("lstm-dnc"), None, &bad).unwrap_err();
        assert!(err.to_string().contains("shift_range"), "{err}");
    }

    #[test]
    fn configs_of_the_earlier_single_name_form_still_load() {
        let old = "seed = 2\n[task]\nname = \"copy\"\n[model]\nkind = \"ff-ntm\"\nsize = 50\nlayers = 1\nclip = 20.0\n[model.memory]\nrows = 32\nwidth = 20\nread_heads = 1\nwrite_heads = 1\nshift_range = 1\ninit = \"constant\"\nfused = true\n";
        let c = RunConfig::from_toml(old).unwrap();
        let model = c.model.unwrap();
        assert_eq!((model.name(), model.controller.size), ("ff-ntm".into(), 50));
        assert_eq!(model.memory.options["rows"].as_integer(), Some(32));
        assert!(!model.memory.options.contains_key("fused"));
    }

    #[test]
    fn bad_input_gives_clear_errors() {
        let err = |task: Option<&str>, file: Option<&str>, sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            RunConfig::resolve(task, None, file, &sets)
                .unwrap_err()
                .to_string()
        };
        assert!(err(Some("sorting"), None, &[]).contains("sorting"));
        assert!(err(Some("copy"), None, &["train.batch_sise=3"]).contains("batch_sise"));
        assert!(err(Some("copy"), None, &["train.batch_size"]).contains("key=value"));
        assert!(err(Some("copy"), Some("[train\nbatch_size = 3"), &[]).contains("bad TOML"));
        assert!(err(Some("copy"), Some("[task]\nname = \"ngrams\"\n"), &[]).contains("ngrams"));
        assert!(err(None, None, &[]).contains("no task"));
        assert!(err(Some("copy"), None, &["train.batch_size=0"]).contains("batch_size"));
        assert!(err(Some("copy"), None, &["task.max_lenght=3"]).contains("max_lenght"));
        assert!(err(Some("copy"), None, &["model.memory.rowz=3"]).contains("rowz"));
        assert!(err(Some("copy"), None, &["model.controller.kind=rnn"]).contains("rnn"));
        assert!(err(Some("copy"), None, &["model.controller.depth=2"]).contains("depth"));
        let unknown = RunConfig::resolve(Some("copy"), Some("tape-ntm"), None, &[])
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("tape-ntm") && unknown.contains("lstm-ntm"),
            "{unknown}"
        );
    }
}
