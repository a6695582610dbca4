//! Experiment files: `tasks/<task>.toml`, the one home of each task's configuration.
//!
//! A file names a task, the model trained when none is named, the paper's hyperparameters of
//! every model it compares, the sizes generalisation is tested at, and sweep profiles that set
//! budgets. The workspace's files are embedded at build time ([`builtin`]): the defaults of
//! `ntm train --task T --model M` ([`Registry::default_run`](crate::Registry::default_run)) and
//! of `ntm eval` come from them, and `cargo xtask train-all` sweeps the same files, so the two
//! cannot disagree.
//!
//! ```
//! use ntm_train::experiment::{builtin, Experiment};
//!
//! # fn main() -> Result<(), ntm_train::TrainError> {
//! let sort = builtin("priority-sort")?.expect("a built-in task");
//! assert_eq!(sort.models["lstm-ntm"].heads, Some(5));
//! let text = r#"
//! task = "copy"
//! eval = ["20", "40"]
//! show = "40"
//! [models.lstm-ntm]
//! size = 64
//! layers = 1
//! heads = 1
//! lr = 1e-4
//! "#;
//! let e = Experiment::parse(text)?;
//! assert!(e.model_sets("lstm-ntm").contains(&"model.controller.size=64".to_string()));
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::OnceLock;

use ntm_tasks::Size;
use serde::Deserialize;

use crate::{Result, TrainError};

/// The experiment files of the built-in tasks, as `(file name, text)`.
const FILES: [(&str, &str); 6] = [
    ("copy.toml", include_str!("../../../tasks/copy.toml")),
    (
        "repeat-copy.toml",
        include_str!("../../../tasks/repeat-copy.toml"),
    ),
    (
        "associative-recall.toml",
        include_str!("../../../tasks/associative-recall.toml"),
    ),
    ("ngrams.toml", include_str!("../../../tasks/ngrams.toml")),
    (
        "priority-sort.toml",
        include_str!("../../../tasks/priority-sort.toml"),
    ),
    (
        "memory-reuse.toml",
        include_str!("../../../tasks/memory-reuse.toml"),
    ),
];

/// The model a file trains when it names none.
pub const DEFAULT_MODEL: &str = "lstm-ntm";

fn default_model() -> String {
    DEFAULT_MODEL.to_string()
}

/// One model of an experiment: the paper's hyperparameters, then any departures.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Controller (or baseline) units per layer.
    pub size: usize,
    /// Layers.
    pub layers: usize,
    /// Read heads and write heads, each (models with a memory).
    pub heads: Option<usize>,
    /// Learning rate.
    pub lr: f64,
    /// Options of the memory, set after `heads` (`{ read_heads = 4, write_heads = 1 }`).
    #[serde(default)]
    pub memory: toml::Table,
    /// Further `key=value` overrides: departures from the paper, each with its reason in a
    /// comment of the file.
    #[serde(default)]
    pub set: Vec<String>,
}

impl ModelSpec {
    /// The controller's size and layers and the learning rate as `key=value` overrides; with
    /// `own`, also the heads, the memory options and the departures, which belong to the
    /// memory kind the spec was written for (another kind may not even have heads).
    fn sets(&self, own: bool) -> Vec<String> {
        let mut sets = vec![
            format!("model.controller.size={}", self.size),
            format!("model.controller.layers={}", self.layers),
            format!("train.optimizer.lr={}", self.lr),
        ];
        if let Some(h) = self.heads.filter(|_| own) {
            sets.push(format!("model.memory.read_heads={h}"));
            sets.push(format!("model.memory.write_heads={h}"));
        }
        if own {
            sets.extend(
                self.memory
                    .iter()
                    .map(|(k, v)| format!("model.memory.{k}={v}")),
            );
            sets.extend(self.set.iter().cloned());
        }
        sets
    }
}

/// Whether `model` names a model with a memory (`controller-memory`), whose weightings a figure
/// can show.
pub fn has_memory(model: &str) -> bool {
    model.contains('-')
}

/// Overrides a profile applies to one model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileModel {
    /// `key=value` overrides.
    #[serde(default)]
    pub set: Vec<String>,
}

/// A sweep budget: seeds, evaluation size and overrides for every model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Seeds per model.
    pub seeds: usize,
    /// Sequences per generalisation size.
    pub eval_sequences: usize,
    /// `key=value` overrides for every run.
    #[serde(default)]
    pub set: Vec<String>,
    /// Per-model overrides.
    #[serde(default)]
    pub models: BTreeMap<String, ProfileModel>,
}

/// One experiment file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Task name.
    pub task: String,
    /// The model `ntm train --task T` trains when none is named.
    #[serde(default = "default_model")]
    pub default_model: String,
    /// Generalisation sizes: lengths (`"20"`), item counts, or `LxR` (`"10x20"`).
    pub eval: Vec<String>,
    /// The size of the sequence shown in the weighting figures.
    pub show: String,
    /// `key=value` overrides of every model's default run: the task's options and stopping
    /// rule.
    #[serde(default)]
    pub set: Vec<String>,
    /// Models by name (`controller-memory`, or a controller alone for a baseline).
    pub models: BTreeMap<String, ModelSpec>,
    /// Sweep profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

impl Experiment {
    /// Parses an experiment file's text.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_named(text, "<text>")
    }

    /// Parses an experiment file's text; errors name `file`.
    pub fn parse_named(text: &str, file: &str) -> Result<Self> {
        let bad = |message: String| TrainError::Config(format!("{file}: {message}"));
        let e: Experiment = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        // `Registry::resolve` checks that the kinds exist; here only the form of the name,
        // which keeps a file free of any one registry.
        let word = |w: &str| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if let Some(m) = e.models.keys().find(|m| !m.split('-').all(word)) {
            return Err(bad(format!(
                "model `{m}` is not a name like `lstm-ntm` (controller-memory) or `lstm`"
            )));
        }
        if let Err(err) = e.eval_sizes() {
            return Err(bad(err.to_string()));
        }
        if let Err(err) = Size::from_str(&e.show) {
            return Err(bad(format!("show: {err}")));
        }
        for (name, p) in &e.profiles {
            if p.seeds == 0 || p.eval_sequences == 0 {
                return Err(bad(format!(
                    "profile `{name}` needs seeds >= 1 and eval_sequences >= 1"
                )));
            }
            if let Some(m) = p.models.keys().find(|m| !e.models.contains_key(*m)) {
                return Err(bad(format!(
                    "profile `{name}` sets model `{m}`, which the file does not list"
                )));
            }
        }
        Ok(e)
    }

    /// The generalisation sizes.
    pub fn eval_sizes(&self) -> Result<Vec<Size>> {
        self.eval
            .iter()
            .map(|s| Size::from_str(s).map_err(|e| TrainError::Config(format!("eval: {e}"))))
            .collect()
    }

    /// The name of the spec that model `model` (with memory kind `memory`) takes its
    /// hyperparameters from: its own, else that of the model with the same memory and the
    /// paper's controller of the same kind (`lstm-...` for a recurrent controller, `ff-...` for
    /// a feedforward one), else that of the other controller with the same memory, else that
    /// of the NTM with a controller of the same kind. A model without memory takes the LSTM
    /// baseline's.
    pub fn spec_name(&self, model: &str, memory: &str, recurrent: bool) -> Option<&str> {
        let (same, other) = if recurrent {
            ("lstm", "ff")
        } else {
            ("ff", "lstm")
        };
        let candidates = if memory == ntm::NO_MEMORY {
            vec![model.to_string(), "lstm".to_string()]
        } else {
            vec![
                model.to_string(),
                format!("{same}-{memory}"),
                format!("{other}-{memory}"),
                format!("{same}-ntm"),
            ]
        };
        candidates
            .into_iter()
            .find_map(|c| self.models.get_key_value(&c).map(|(k, _)| k.as_str()))
    }

    /// The overrides, over a preset, of the default run of a model the file lists: the file's
    /// `set`, then the model's spec.
    pub fn model_sets(&self, model: &str) -> Vec<String> {
        self.sets_from(model, true)
    }

    /// The overrides, over its preset, of the default run of model `model` (with memory kind
    /// `memory`), listed or not: the file's `set`, then the spec of
    /// [`spec_name`](Self::spec_name). A spec written for another memory kind lends only the
    /// controller's size and layers and the learning rate.
    pub fn default_sets(&self, model: &str, memory: &str, recurrent: bool) -> Vec<String> {
        match self.spec_name(model, memory, recurrent) {
            Some(spec) => {
                let own = spec == model || spec.ends_with(&format!("-{memory}"));
                self.sets_from(spec, own)
            }
            None => self.set.clone(),
        }
    }

    /// The file's `set`, then spec `spec`'s overrides ([`ModelSpec::sets`]).
    fn sets_from(&self, spec: &str, own: bool) -> Vec<String> {
        let mut sets = self.set.clone();
        if let Some(s) = self.models.get(spec) {
            sets.extend(s.sets(own));
        }
        sets
    }
}

/// The embedded experiment file of the built-in task `task`, if it has one.
///
/// # Errors
/// If an embedded file does not parse (a build from a broken `tasks/` folder).
pub fn builtin(task: &str) -> Result<Option<&'static Experiment>> {
    static PARSED: OnceLock<std::result::Result<Vec<Experiment>, String>> = OnceLock::new();
    let all = PARSED.get_or_init(|| {
        FILES
            .iter()
            .map(|(file, text)| {
                Experiment::parse_named(text, &format!("tasks/{file}")).map_err(|e| e.to_string())
            })
            .collect()
    });
    match all {
        Ok(all) => Ok(all.iter().find(|e| e.task == task)),
        Err(e) => Err(TrainError::Config(e.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_parses_and_names_its_task() {
        let tasks = ntm_tasks::TaskRegistry::default();
        for name in tasks.names() {
            let e = builtin(name).unwrap().unwrap_or_else(|| panic!("{name}"));
            assert!(e.models.contains_key(&e.default_model), "{name}");
            assert!(!e.eval_sizes().unwrap().is_empty(), "{name}");
        }
        assert!(builtin("sorting").unwrap().is_none());
    }

    #[test]
    fn models_without_a_spec_borrow_the_nearest() {
        let e = builtin("associative-recall").unwrap().unwrap();
        assert_eq!(e.spec_name("ff-ntm", "ntm", false), Some("ff-ntm"));
        assert_eq!(e.spec_name("gru-ntm", "ntm", true), Some("lstm-ntm"));
        assert_eq!(e.spec_name("gru-dnc", "dnc", true), Some("lstm-dnc"));
        assert_eq!(e.spec_name("ff-dnc", "dnc", false), Some("lstm-dnc"));
        assert_eq!(e.spec_name("gru", ntm::NO_MEMORY, true), Some("lstm"));
        assert_eq!(e.spec_name("ff-other", "other", false), Some("ff-ntm"));
    }

    #[test]
    fn bad_files_are_errors_that_name_the_problem() {
        let base = "task = \"copy\"\neval = [\"20\"]\nshow = \"20\"\n[models.lstm]\nsize = 8\nlayers = 1\nlr = 1e-3\n";
        assert!(Experiment::parse(base).is_ok());
        let err = |text: &str| Experiment::parse(text).unwrap_err().to_string();
        assert!(err(&base.replace("models.lstm", "models.\"LSTM NTM\"")).contains("LSTM NTM"));
        assert!(err(&base.replace("[\"20\"]", "[\"2x\"]")).contains("eval"));
        assert!(err(&format!("typo = 1\n{base}")).contains("typo"));
        let profile = "[profiles.quick]\nseeds = 0\neval_sequences = 10\n";
        assert!(err(&format!("{base}{profile}")).contains("seeds"));
    }
}
