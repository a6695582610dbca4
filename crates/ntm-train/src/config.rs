//! The description of one training run: task, model, training hyperparameters and seed, with
//! the embedded defaults of every task and `key=value` overrides.

use ntm::memory::NtmMemoryConfig;
use ntm::{ModelConfig, ModelKind};
use ntm_tasks::TaskConfig;
use serde::{Deserialize, Serialize};

use crate::optim::OptimizerConfig;
use crate::{Result, TrainError};

/// Training hyperparameters and budgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Sequences per update.
    pub batch_size: usize,
    /// The optimiser.
    pub optimizer: OptimizerConfig,
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
    /// The model.
    #[serde(default)]
    pub model: ModelConfig,
    /// Training.
    #[serde(default)]
    pub train: TrainConfig,
}

/// The model a task trains when none is named: the feedforward NTM for associative recall,
/// where the paper found it learns about three times faster, the LSTM NTM elsewhere.
pub fn default_model(task: &str) -> ModelKind {
    match task {
        "associative-recall" => ModelKind::FfNtm,
        _ => ModelKind::LstmNtm,
    }
}

/// The paper's model for `task` and `kind` (Graves et al. 2014, tables 1-3): controller size,
/// layers and heads; memory 128 x 20 throughout.
pub fn paper_model(task: &str, kind: ModelKind) -> Result<ModelConfig> {
    let ntm = |size: usize, layers: usize, heads: usize| ModelConfig {
        kind,
        size,
        layers,
        clip: 20.0,
        memory: NtmMemoryConfig {
            read_heads: heads,
            write_heads: heads,
            ..Default::default()
        },
    };
    let (ff, lstm_ntm, lstm) = match task {
        "copy" => (ntm(100, 1, 1), ntm(100, 1, 1), 256),
        "repeat-copy" => (ntm(100, 1, 1), ntm(100, 1, 1), 512),
        "associative-recall" => (ntm(256, 1, 4), ntm(100, 1, 1), 256),
        "ngrams" => (ntm(100, 1, 1), ntm(100, 1, 1), 128),
        "priority-sort" => (ntm(512, 1, 8), ntm(100, 2, 5), 128),
        other => {
            return Err(TrainError::from(ntm_tasks::TaskError::UnknownTask {
                name: other.to_string(),
            }))
        }
    };
    Ok(match kind {
        ModelKind::FfNtm => ff,
        ModelKind::LstmNtm => lstm_ntm,
        ModelKind::Lstm => ModelConfig {
            kind,
            size: lstm,
            layers: 3,
            ..ModelConfig::default()
        },
    })
}

impl RunConfig {
    /// The embedded default run of `task` with a `kind` model: the paper's model, task and
    /// optimiser ([`TrainConfig::default`]), with a stopping rule per task: the three
    /// algorithmic tasks stop after three validations in a row under 0.1 bits per sequence,
    /// N-grams and priority sort after 30 minutes.
    pub fn default_for(task: &str, kind: ModelKind) -> Result<Self> {
        let mut train = TrainConfig::default();
        match task {
            "copy" | "repeat-copy" | "associative-recall" => {
                train.target_cost = 0.1;
                train.patience = 3;
            }
            "ngrams" | "priority-sort" => train.max_seconds = 1800.0,
            _ => {}
        }
        Ok(Self {
            seed: 0,
            task: TaskConfig::default_for(task)?,
            model: paper_model(task, kind)?,
            train,
        })
    }

    /// Builds a run from, in increasing precedence: the embedded defaults, a TOML file's text,
    /// and `key=value` overrides (`train.batch_size=16`, `model.memory.rows=64`).
    ///
    /// `task` and `kind` (from the command line) choose the defaults; when absent they come
    /// from the file, and the model kind defaults to [`default_model`].
    pub fn resolve(
        task: Option<&str>,
        kind: Option<ModelKind>,
        file: Option<&str>,
        sets: &[String],
    ) -> Result<Self> {
        let mut overlay: toml::Table = match file {
            Some(text) => toml::from_str(text).map_err(|e| {
                let line = e.span().map_or(0, |s| {
                    text[..s.start.min(text.len())].lines().count().max(1)
                });
                TrainError::Config(format!("bad TOML at line {line}: {}", e.message()))
            })?,
            None => toml::Table::new(),
        };
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
        let overlay_kind = overlay
            .get("model")
            .and_then(|m| m.get("kind"))
            .and_then(|k| k.as_str());
        let kind = match (kind, overlay_kind) {
            (Some(k), _) => k,
            (None, Some(k)) => k
                .parse()
                .map_err(|e: ntm::NtmError| TrainError::Config(e.to_string()))?,
            (None, None) => default_model(&task),
        };
        if let Some(model) = overlay.get_mut("model").and_then(|m| m.as_table_mut()) {
            model.insert("kind".into(), toml::Value::String(kind.name().into()));
        }
        let mut merged = toml::Table::try_from(Self::default_for(&task, kind)?)
            .map_err(|e| TrainError::Config(format!("cannot serialise defaults: {e}")))?;
        merge(&mut merged, overlay);
        let config: RunConfig = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| TrainError::Config(e.message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a complete run configuration (a run directory's `config.toml`).
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: RunConfig =
            toml::from_str(text).map_err(|e| TrainError::Config(e.message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|e| TrainError::Config(format!("cannot serialise config: {e}")))
    }

    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<()> {
        let t = &self.train;
        let problem = if t.batch_size == 0 {
            Some("train.batch_size must be >= 1")
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
            None => Ok(()),
        }
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces. A table
/// whose `kind` changes (the optimiser) is replaced whole, since its fields depend on the kind.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o))
                if key == "model" || o.get("kind").is_none() || o.get("kind") == b.get("kind") =>
            {
                merge(b, o)
            }
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
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
        for task in ntm_tasks::TASK_NAMES {
            for kind in ModelKind::ALL {
                let c = RunConfig::default_for(task, kind).unwrap();
                assert_eq!(c.model.kind, kind);
                assert_eq!(RunConfig::from_toml(&c.to_toml().unwrap()).unwrap(), c);
            }
        }
    }

    #[test]
    fn file_and_overrides_take_precedence() {
        let file = "seed = 3\n[model]\nsize = 64\n[train]\nbatch_size = 8\n";
        let sets = vec![
            "train.batch_size=4".to_string(),
            "train.optimizer.lr=0.01".to_string(),
            "model.memory.rows=32".to_string(),
            "task.max_length=5".to_string(),
        ];
        let c =
            RunConfig::resolve(Some("copy"), Some(ModelKind::FfNtm), Some(file), &sets).unwrap();
        assert_eq!(c.seed, 3);
        assert_eq!(c.model.size, 64);
        assert_eq!(c.model.kind, ModelKind::FfNtm);
        assert_eq!(c.model.memory.rows, 32);
        assert_eq!(c.train.batch_size, 4);
        assert_eq!(c.train.optimizer.lr(), 0.01);
        assert_eq!(
            c.task,
            TaskConfig::Copy(ntm_tasks::CopyConfig {
                max_length: 5,
                ..Default::default()
            })
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
    fn the_model_kind_can_come_from_a_set_and_picks_the_paper_model() {
        let c =
            RunConfig::resolve(Some("copy"), None, None, &["model.kind=lstm".to_string()]).unwrap();
        assert_eq!(
            (c.model.kind, c.model.size, c.model.layers),
            (ModelKind::Lstm, 256, 3)
        );
    }

    #[test]
    fn recall_defaults_to_the_feedforward_ntm() {
        let c = RunConfig::resolve(Some("associative-recall"), None, None, &[]).unwrap();
        assert_eq!(
            (c.model.kind, c.model.size, c.model.memory.read_heads),
            (ModelKind::FfNtm, 256, 4)
        );
        let c = RunConfig::resolve(Some("copy"), None, None, &[]).unwrap();
        assert_eq!(c.model.kind, ModelKind::LstmNtm);
    }

    #[test]
    fn paper_models_follow_the_table() {
        let sort_ff = paper_model("priority-sort", ModelKind::FfNtm).unwrap();
        assert_eq!(
            (
                sort_ff.size,
                sort_ff.memory.read_heads,
                sort_ff.memory.write_heads
            ),
            (512, 8, 8)
        );
        let sort_lstm = paper_model("priority-sort", ModelKind::LstmNtm).unwrap();
        assert_eq!(
            (
                sort_lstm.size,
                sort_lstm.layers,
                sort_lstm.memory.read_heads
            ),
            (100, 2, 5)
        );
        let recall_lstm = paper_model("associative-recall", ModelKind::Lstm).unwrap();
        assert_eq!((recall_lstm.size, recall_lstm.layers), (256, 3));
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
        assert!(err(Some("copy"), None, &["model.kind=gru"]).contains("gru"));
    }
}
