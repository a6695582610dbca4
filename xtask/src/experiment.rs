//! Experiment files (`tasks/<task>.toml`, read by [`ntm_train::experiment`]) expanded into
//! the runs of a sweep.

use std::path::{Path, PathBuf};

pub use ntm_train::experiment::{has_memory, Experiment, ModelSpec, Profile, ProfileModel};

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

/// What a sweep does with an experiment file.
pub trait Sweep: Sized {
    /// Parses an experiment file's text, checking that it names a task `ntm` knows.
    fn parse_checked(text: &str, file: &str) -> Result<Self>;

    /// Reads every `*.toml` of `dir`, in the paper's task order.
    fn load_dir(dir: &Path) -> Result<Vec<Self>>;

    /// The models of this experiment, the paper's first, in its order.
    fn model_kinds(&self) -> Vec<&str>;

    /// One run per (model, seed) of `profile`; `seeds` overrides the profile's seed count.
    fn runs(&self, profile: &str, seeds: Option<usize>) -> Result<Vec<RunSpec>>;
}

impl Sweep for Experiment {
    fn parse_checked(text: &str, file: &str) -> Result<Self> {
        let bad = |message: String| XtaskError::Experiment {
            file: file.to_string(),
            message,
        };
        let e = Experiment::parse(text).map_err(|e| bad(e.to_string()))?;
        if !task_order().contains(&e.task) {
            return Err(bad(format!("unknown task `{}`", e.task)));
        }
        Ok(e)
    }

    fn load_dir(dir: &Path) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).map_err(io(&path))?;
                out.push(Self::parse_checked(&text, &path.display().to_string())?);
            }
        }
        let order = task_order();
        out.sort_by_key(|e| order.iter().position(|t| *t == e.task));
        Ok(out)
    }

    fn model_kinds(&self) -> Vec<&str> {
        let mut models: Vec<&str> = self.models.keys().map(String::as_str).collect();
        models.sort_by_key(|m| model_rank(m));
        models
    }

    fn runs(&self, profile: &str, seeds: Option<usize>) -> Result<Vec<RunSpec>> {
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
            // The model's default run as the file on disk has it (which the `ntm` binary
            // embeds when it is built), then the profile's budget.
            let mut sets = self.model_sets(model);
            sets.extend(p.set.iter().cloned());
            if let Some(m) = p.models.get(model) {
                sets.extend(m.set.iter().cloned());
            }
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
