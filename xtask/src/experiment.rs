//! Experiment files: `tasks/<task>.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{io, Result, XtaskError};

/// The models of the paper, in the order its tables list them; other models (any name `ntm`
/// accepts, such as `gru-ntm`) follow in alphabetical order.
pub const MODEL_ORDER: [&str; 3] = ["ff-ntm", "lstm-ntm", "lstm"];

/// The position of `model` in reports: the paper's models first.
pub fn model_rank(model: &str) -> (usize, String) {
    let paper = MODEL_ORDER.iter().position(|m| *m == model);
    (paper.unwrap_or(MODEL_ORDER.len()), model.to_string())
}

/// The tasks `ntm` knows, in the order of the paper's sections.
pub fn task_order() -> Vec<String> {
    ntm_tasks::TaskRegistry::default()
        .names()
        .into_iter()
        .map(String::from)
        .collect()
}

/// Whether `model` names a model with a memory (`controller-memory`), whose weightings a figure
/// can show.
pub fn has_memory(model: &str) -> bool {
    model.contains('-')
}

/// One model of an experiment, with the paper's hyperparameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Controller (or baseline) units per layer.
    pub size: usize,
    /// Layers.
    pub layers: usize,
    /// Read heads and write heads, each (NTMs only).
    pub heads: Option<usize>,
    /// Learning rate.
    pub lr: f64,
}

/// Overrides a profile applies to one model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileModel {
    /// `key=value` overrides.
    #[serde(default)]
    pub set: Vec<String>,
}

/// A budget: seeds, evaluation size and overrides for every model.
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
    /// Generalisation sizes.
    pub eval: Vec<String>,
    /// The size of the sequence shown in the weighting figures.
    pub show: String,
    /// Models by kind.
    pub models: BTreeMap<String, ModelSpec>,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

/// One training run of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Task name.
    pub task: String,
    /// Model kind.
    pub model: String,
    /// Seed.
    pub seed: u64,
    /// Run directory, relative to the sweep's output directory.
    pub dir: PathBuf,
    /// `key=value` overrides, in order.
    pub sets: Vec<String>,
    /// Generalisation sizes.
    pub eval: Vec<String>,
    /// Sequences per generalisation size.
    pub eval_sequences: usize,
    /// The size shown in the weighting figure (NTMs only).
    pub show: Option<String>,
}

impl RunSpec {
    /// Arguments of the `ntm train` command for this run, writing under `out`.
    pub fn train_args(&self, out: &Path) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "train".into(),
            "--task".into(),
            self.task.clone(),
            "--model".into(),
            self.model.clone(),
            "--seed".into(),
            self.seed.to_string(),
            "--out".into(),
            out.join(&self.dir).display().to_string(),
        ];
        for s in &self.sets {
            args.push("--set".into());
            args.push(s.clone());
        }
        args
    }

    /// Arguments of `ntm eval` for the generalisation costs.
    pub fn eval_args(&self, out: &Path) -> Vec<String> {
        vec![
            "eval".into(),
            "--run".into(),
            out.join(&self.dir).display().to_string(),
            "--lengths".into(),
            self.eval.join(","),
            "--sequences".into(),
            self.eval_sequences.to_string(),
            "--json".into(),
        ]
    }

    /// Arguments of `ntm show` for the weighting figure, for NTMs.
    pub fn show_args(&self, out: &Path) -> Option<Vec<String>> {
        let size = self.show.as_ref()?;
        let dir = out.join(&self.dir);
        Some(vec![
            "show".into(),
            "--run".into(),
            dir.display().to_string(),
            "--length".into(),
            size.clone(),
            "--out".into(),
            dir.join(FIGURE).display().to_string(),
        ])
    }
}

/// File name of a run's weighting figure.
pub const FIGURE: &str = "weights.png";
/// File name of a run's generalisation costs.
pub const EVAL: &str = "eval.json";

impl Experiment {
    /// Parses an experiment file's text.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_named(text, "<text>")
    }

    fn parse_named(text: &str, file: &str) -> Result<Self> {
        let bad = |message: String| XtaskError::Experiment {
            file: file.to_string(),
            message,
        };
        let e: Experiment = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if !task_order().contains(&e.task) {
            return Err(bad(format!("unknown task `{}`", e.task)));
        }
        // `ntm` checks that the kinds exist; here only the form of the name, which keeps the
        // sweep driver free of the model crates.
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

    /// Reads every `*.toml` of `dir`, in the paper's task order.
    pub fn load_dir(dir: &Path) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).map_err(io(&path))?;
                out.push(Self::parse_named(&text, &path.display().to_string())?);
            }
        }
        let order = task_order();
        out.sort_by_key(|e| order.iter().position(|t| *t == e.task));
        Ok(out)
    }

    /// The models of this experiment, the paper's first, in its order.
    pub fn model_kinds(&self) -> Vec<&str> {
        let mut models: Vec<&str> = self.models.keys().map(String::as_str).collect();
        models.sort_by_key(|m| model_rank(m));
        models
    }

    /// One run per (model, seed) of `profile`; `seeds` overrides the profile's seed count.
    pub fn runs(&self, profile: &str, seeds: Option<usize>) -> Result<Vec<RunSpec>> {
        let p = self
            .profiles
            .get(profile)
            .ok_or_else(|| XtaskError::Experiment {
                file: self.task.clone(),
                message: format!(
                    "no profile `{profile}` (has {:?})",
                    self.profiles.keys().collect::<Vec<_>>()
                ),
            })?;
        let mut runs = Vec::new();
        for model in self.model_kinds() {
            let spec = &self.models[model];
            let mut sets = vec![
                format!("model.controller.size={}", spec.size),
                format!("model.controller.layers={}", spec.layers),
                format!("train.optimizer.lr={}", spec.lr),
            ];
            if let Some(h) = spec.heads {
                sets.push(format!("model.memory.read_heads={h}"));
                sets.push(format!("model.memory.write_heads={h}"));
            }
            sets.extend(p.set.iter().cloned());
            sets.extend(
                p.models
                    .get(model)
                    .map(|m| m.set.clone())
                    .unwrap_or_default(),
            );
            for seed in 0..seeds.unwrap_or(p.seeds) as u64 {
                runs.push(RunSpec {
                    task: self.task.clone(),
                    model: model.to_string(),
                    seed,
                    dir: PathBuf::from("runs")
                        .join(&self.task)
                        .join(model)
                        .join(format!("seed{seed}")),
                    sets: sets.clone(),
                    eval: self.eval.clone(),
                    eval_sequences: p.eval_sequences,
                    show: has_memory(model).then(|| self.show.clone()),
                });
            }
        }
        Ok(runs)
    }
}
