//! The training loop over any sequence model and any task.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use ntm::memory::MemoryTrace;
use ntm::params::stream;
use ntm::SequenceModel;
use ntm_tasks::{Batch, CostKind, Sequence, Size, Task, TaskConfig};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, write_atomic, Progress};
use crate::config::{Registry, RunConfig, RunParts, TrainConfig};
use crate::loss::{bit_errors, masked_bce};
use crate::optim::{clip_global_norm, clip_values, Optimizer};
use crate::{Result, TrainError};

/// File names inside a run directory.
pub mod files {
    /// The resolved run configuration.
    pub const CONFIG: &str = "config.toml";
    /// The latest checkpoint.
    pub const CHECKPOINT: &str = "checkpoint.safetensors";
    /// One JSON object per line: training and validation metrics.
    pub const METRICS: &str = "metrics.jsonl";
    /// Written when a run ends.
    pub const SUMMARY: &str = "summary.json";
}

/// Seed of the validation set: fixed, so that runs with different seeds are scored alike.
pub const VALIDATION_SEED: u64 = 0x5EED_0F7E_57ED;

/// What one update measured.
#[derive(Debug, Clone, PartialEq)]
pub struct StepStats {
    /// Updates applied, this one included.
    pub step: u64,
    /// Training sequences seen, this batch included.
    pub sequences: u64,
    /// Cross-entropy of the batch, bits per sequence.
    pub loss_bits: f64,
    /// The task's cost on the batch, bits per sequence.
    pub cost: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Time steps of the batch.
    pub time_steps: usize,
}

/// Cost of a model on a set of sequences.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalStats {
    /// Sequences scored.
    pub sequences: usize,
    /// Cross-entropy, bits per sequence.
    pub loss_bits: f64,
    /// Bit errors per sequence.
    pub bit_errors: f64,
    /// The task's cost: bit errors, or cross-entropy bits for the N-grams task.
    pub cost: f64,
    /// The Bayes-optimal cost on the same sequences, where the task has one.
    pub optimal: Option<f64>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Updates applied.
    pub step: u64,
    /// Training sequences seen.
    pub sequences: u64,
    /// Mean training cross-entropy since the previous line, bits per sequence.
    pub loss: f64,
    /// Mean training cost since the previous line, bits per sequence.
    pub bits_per_seq: f64,
    /// Training throughput since the previous line.
    pub seq_per_s: f64,
    /// Wall-clock seconds since the run began.
    pub wall_seconds: f64,
    /// Validation cost, on lines written after a validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_bits_per_seq: Option<f64>,
    /// Validation cross-entropy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// Bayes-optimal validation cost (N-grams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_optimal: Option<f64>,
}

/// What `summary.json` holds when a run ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Task name.
    pub task: String,
    /// Model kind.
    pub model: String,
    /// Trainable parameters.
    pub params: usize,
    /// Seed of the run.
    pub seed: u64,
    /// Updates applied.
    pub steps: u64,
    /// Training sequences seen.
    pub sequences: u64,
    /// Wall-clock seconds of training, validation included.
    pub wall_seconds: f64,
    /// Final validation cost, bits per sequence.
    pub val_bits_per_seq: f64,
    /// Final validation cross-entropy, bits per sequence.
    pub val_loss: f64,
    /// Bayes-optimal validation cost (N-grams).
    pub val_optimal: Option<f64>,
    /// What the cost measures.
    pub cost_kind: String,
    /// Training sequences per second.
    pub seq_per_s: f64,
    /// Whether the target cost was reached.
    pub converged: bool,
    /// Sequences seen when it was.
    pub converged_at_sequences: Option<u64>,
    /// Seconds when it was.
    pub converged_at_seconds: Option<f64>,
}

/// Receives progress from [`Trainer::run`]; the command line draws a progress bar with it.
pub trait Observer {
    /// Called after every update.
    fn on_step(&mut self, _stats: &StepStats) {}
    /// Called after every validation.
    fn on_eval(&mut self, _step: u64, _stats: &EvalStats) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {}

/// One time-major array as a `[steps, batch, width]` tensor on `device`.
pub fn to_tensor(seq: &Sequence, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(
        &seq.data,
        (seq.steps, seq.batch, seq.width),
        device,
    )?)
}

/// Cost of `model` on one batch, without touching its parameters.
pub fn score(model: &dyn SequenceModel, task: &dyn Task, batch: &Batch) -> Result<EvalStats> {
    let device = model.params().device().clone();
    let logits = model.forward(&to_tensor(&batch.inputs, &device)?)?;
    score_logits(&logits, task, batch)
}

/// Cost of the logits `[steps, batch, outputs]` a model gave for `batch`.
pub fn score_logits(logits: &Tensor, task: &dyn Task, batch: &Batch) -> Result<EvalStats> {
    let device = logits.device();
    let loss = masked_bce(
        logits,
        &to_tensor(&batch.targets, device)?.to_dtype(logits.dtype())?,
        &to_tensor(&batch.mask, device)?.to_dtype(logits.dtype())?,
    )?;
    let loss_bits = loss.to_dtype(DType::F64)?.to_scalar::<f64>()? / std::f64::consts::LN_2;
    let flat: Vec<f32> = logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
    let errors = bit_errors(
        &flat,
        &batch.targets.data,
        &batch.mask.data,
        batch.batch_size(),
        batch.targets.width,
    );
    let cost = match task.cost_kind() {
        CostKind::BitErrors => errors,
        CostKind::CrossEntropyBits => loss_bits,
    };
    Ok(EvalStats {
        sequences: batch.batch_size(),
        loss_bits,
        bit_errors: errors,
        cost,
        optimal: task.optimal_cost(batch),
    })
}

/// Mean of per-batch statistics, weighted by sequences (the optimum only if every part has
/// one).
pub fn merge_stats(parts: &[EvalStats]) -> EvalStats {
    let total: usize = parts.iter().map(|p| p.sequences).sum();
    let mean = |f: &dyn Fn(&EvalStats) -> f64| {
        parts.iter().map(|p| f(p) * p.sequences as f64).sum::<f64>() / total.max(1) as f64
    };
    let optimal = if parts.iter().all(|p| p.optimal.is_some()) && !parts.is_empty() {
        Some(mean(&|p| p.optimal.unwrap_or(0.0)))
    } else {
        None
    };
    EvalStats {
        sequences: total,
        loss_bits: mean(&|p| p.loss_bits),
        bit_errors: mean(&|p| p.bit_errors),
        cost: mean(&|p| p.cost),
        optimal,
    }
}

/// `count` sequences from `task` in batches of at most `batch`, from the named stream of `seed`.
pub fn make_batches(
    task: &dyn Task,
    count: usize,
    batch: usize,
    size: Option<Size>,
    seed: u64,
    name: &str,
) -> Result<Vec<Batch>> {
    let mut out = Vec::new();
    let mut made = 0;
    while made < count {
        let n = batch.min(count - made);
        let mut rng = stream(seed, &format!("{name}/{}", out.len()));
        out.push(task.batch(n, size, &mut rng)?);
        made += n;
    }
    Ok(out)
}

/// Cost of `model` on `count` fresh sequences at `size` (or the training distribution).
pub fn evaluate(
    model: &dyn SequenceModel,
    task: &dyn Task,
    count: usize,
    batch: usize,
    size: Option<Size>,
    seed: u64,
) -> Result<EvalStats> {
    let name = match size {
        Some(s) => format!("eval/{s}"),
        None => "eval".to_string(),
    };
    let parts = make_batches(task, count, batch, size, seed, &name)?
        .iter()
        .map(|b| score(model, task, b))
        .collect::<Result<Vec<_>>>()?;
    Ok(merge_stats(&parts))
}

/// Runs `model` on one sequence and returns its inputs, targets, output probabilities and the
/// memory trace of every step: what a figure of the run shows.
pub fn trace(
    model: &dyn SequenceModel,
    task: &dyn Task,
    size: Option<Size>,
    seed: u64,
) -> Result<(Batch, Tensor, Vec<MemoryTrace>)> {
    let batch = make_batches(task, 1, 1, size, seed, "trace")?.remove(0);
    let device = model.params().device().clone();
    let (logits, traces) = model.forward_traced(&to_tensor(&batch.inputs, &device)?)?;
    let probs = (logits.neg()?.exp()? + 1.0)?.recip()?;
    Ok((batch, probs, traces))
}

/// The model's input and output sizes must be the task's.
fn check_sizes(model: &dyn SequenceModel, task: &dyn Task) -> Result<()> {
    if model.input_size() != task.input_size() || model.output_size() != task.output_size() {
        return Err(TrainError::Config(format!(
            "the model takes {} inputs and gives {} outputs; task {} has {} and {}",
            model.input_size(),
            model.output_size(),
            task.name(),
            task.input_size(),
            task.output_size()
        )));
    }
    Ok(())
}

/// Trains one model on one task.
pub struct Trainer {
    config: RunConfig,
    model: Box<dyn SequenceModel>,
    task: Box<dyn Task>,
    optimizer: Optimizer,
    validation: Vec<Batch>,
    progress: Progress,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("progress", &self.progress)
            .finish()
    }
}

impl Trainer {
    /// A fresh model, optimiser and validation set for `config`, on `device`, with the built-in
    /// tasks, controllers and memories.
    pub fn new(config: RunConfig, device: &Device) -> Result<Self> {
        Self::with_registry(config, &Registry::default(), device)
    }

    /// [`Trainer::new`] with the tasks, controllers and memories of `registry`, where kinds of
    /// your own can be registered.
    pub fn with_registry(config: RunConfig, registry: &Registry, device: &Device) -> Result<Self> {
        let config = registry.check(config)?;
        let (task, model) = registry.build(&config, device)?;
        Self::assemble(config, model, task)
    }

    /// Trains a model and a task you built yourself: any [`SequenceModel`] (an
    /// [`ntm::Ntm`] with a controller or memory of your own, say) on any [`Task`].
    ///
    /// Everything works as for a run from a [`RunConfig`]: checkpoints, exact resume (build
    /// the same model and task again, then [`Trainer::load_checkpoint`]), metrics, validation,
    /// summaries and observers. The run directory's `config.toml` records the seed, the task's
    /// name and `train`; [`load_run_with`] loads the run back with a factory that rebuilds the
    /// model. The model must draw its parameters from `seed` for the seed to describe the run.
    pub fn from_parts(
        model: Box<dyn SequenceModel>,
        task: Box<dyn Task>,
        train: TrainConfig,
        seed: u64,
    ) -> Result<Self> {
        let config = RunConfig {
            seed,
            task: TaskConfig::named(task.name()),
            model: None,
            train,
        };
        Self::assemble(config, model, task)
    }

    fn assemble(
        config: RunConfig,
        model: Box<dyn SequenceModel>,
        task: Box<dyn Task>,
    ) -> Result<Self> {
        config.validate()?;
        check_sizes(model.as_ref(), task.as_ref())?;
        let optimizer =
            Optimizer::new(config.train.optimizer.clone(), model.params().named_vars())?;
        let t = &config.train;
        let validation = make_batches(
            task.as_ref(),
            t.val_sequences,
            t.val_batch,
            None,
            VALIDATION_SEED,
            "validation",
        )?;
        Ok(Self {
            config,
            model,
            task,
            optimizer,
            validation,
            progress: Progress::default(),
        })
    }

    /// Restores weights, optimiser moments and progress from a checkpoint of this configuration.
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<()> {
        let ckpt = checkpoint::load(path, self.model.params().device())?;
        checkpoint::restore_params(self.model.params(), &ckpt.tensors)?;
        self.optimizer
            .load_state(&ckpt.tensors, ckpt.progress.step)?;
        self.progress = ckpt.progress;
        Ok(())
    }

    /// Writes a checkpoint of the current state to `path`, atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        checkpoint::save(
            path,
            self.model.params(),
            &self.optimizer.state_tensors(),
            &self.config.to_toml()?,
            &self.progress,
        )
    }

    /// The run's configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Changes the budgets and stopping rules (for a resumed run), keeping everything else.
    pub fn set_train_limits(&mut self, max_sequences: u64, max_seconds: f64) {
        self.config.train.max_sequences = max_sequences;
        self.config.train.max_seconds = max_seconds;
    }

    /// The model being trained.
    pub fn model(&self) -> &dyn SequenceModel {
        self.model.as_ref()
    }

    /// The task.
    pub fn task(&self) -> &dyn Task {
        self.task.as_ref()
    }

    /// Where training stands.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// One update on a fresh batch. A non-finite loss or gradient is an error naming the step,
    /// and leaves the parameters untouched.
    pub fn step(&mut self) -> Result<StepStats> {
        let step = self.progress.step + 1;
        let t = &self.config.train;
        let mut rng = stream(self.config.seed, &format!("train/{step}"));
        let batch = self.task.batch(t.batch_size, None, &mut rng)?;
        let device = self.model.params().device().clone();
        let logits = self.model.forward(&to_tensor(&batch.inputs, &device)?)?;
        let loss = masked_bce(
            &logits,
            &to_tensor(&batch.targets, &device)?,
            &to_tensor(&batch.mask, &device)?,
        )?;
        let loss_value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !loss_value.is_finite() {
            return Err(TrainError::NonFinite { step, what: "loss" });
        }
        let grads = loss.backward()?;
        let mut grads = self.optimizer.gradients(&grads)?;
        if t.clip_value > 0.0 {
            clip_values(&mut grads, t.clip_value)?;
        }
        let grad_norm = if t.clip_norm > 0.0 {
            clip_global_norm(&mut grads, t.clip_norm)?
        } else {
            crate::optim::global_norm(&grads)?
        };
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                step,
                what: "gradient",
            });
        }
        self.optimizer.step(&grads)?;
        self.progress.step = step;
        self.progress.sequences += batch.batch_size() as u64;
        let stats = score_logits(&logits, self.task.as_ref(), &batch)?;
        Ok(StepStats {
            step,
            sequences: self.progress.sequences,
            loss_bits: stats.loss_bits,
            cost: stats.cost,
            grad_norm,
            time_steps: batch.steps(),
        })
    }

    /// Cost on the fixed validation set.
    pub fn validate(&self) -> Result<EvalStats> {
        let parts = self
            .validation
            .iter()
            .map(|b| score(self.model.as_ref(), self.task.as_ref(), b))
            .collect::<Result<Vec<_>>>()?;
        Ok(merge_stats(&parts))
    }

    fn done(&self) -> bool {
        let t = &self.config.train;
        self.progress.sequences >= t.max_sequences
            || (t.max_seconds > 0.0 && self.progress.wall_seconds >= t.max_seconds)
            || self.progress.converged_at_sequences.is_some()
    }

    /// Trains until a budget is spent or the target is met, writing metrics, checkpoints and
    /// finally `summary.json` into `dir`. Call [`Trainer::load_checkpoint`] first to resume.
    pub fn run(&mut self, dir: &Path, observer: &mut dyn Observer) -> Result<Summary> {
        std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        write_atomic(&dir.join(files::CONFIG), self.config.to_toml()?.as_bytes())?;
        let mut metrics = MetricsWriter::open(&dir.join(files::METRICS), self.progress.step)?;
        let checkpoint_path = dir.join(files::CHECKPOINT);
        let t = self.config.train.clone();
        let session = Instant::now();
        let wall_before = self.progress.wall_seconds;
        let mut window = Window::default();
        let mut last_eval: Option<(u64, EvalStats)> = None;
        while !self.done() {
            let stats = self.step()?;
            self.progress.wall_seconds = wall_before + session.elapsed().as_secs_f64();
            window.add(&stats);
            observer.on_step(&stats);
            let mut record = None;
            if stats.step % t.log_every == 0 {
                record = Some(window.record(&stats, self.progress.wall_seconds));
            }
            if stats.step % t.eval_every == 0 {
                let val = self.validate()?;
                self.progress.wall_seconds = wall_before + session.elapsed().as_secs_f64();
                self.note_validation(&val);
                observer.on_eval(stats.step, &val);
                let mut r = record
                    .take()
                    .unwrap_or_else(|| window.record(&stats, self.progress.wall_seconds));
                r.val_bits_per_seq = Some(val.cost);
                r.val_loss = Some(val.loss_bits);
                r.val_optimal = val.optimal;
                record = Some(r);
                last_eval = Some((stats.step, val));
            }
            if let Some(r) = record {
                metrics.write(&r)?;
            }
            if stats.step % t.checkpoint_every == 0 {
                self.save_checkpoint(&checkpoint_path)?;
            }
        }
        let val = match last_eval {
            Some((step, val)) if step == self.progress.step => val,
            _ => {
                let val = self.validate()?;
                self.note_validation(&val);
                val
            }
        };
        self.progress.wall_seconds = wall_before + session.elapsed().as_secs_f64();
        self.save_checkpoint(&checkpoint_path)?;
        let p = &self.progress;
        let summary = Summary {
            task: self.task.name().to_string(),
            model: self.config.model_name(),
            params: self.model.param_count(),
            seed: self.config.seed,
            steps: p.step,
            sequences: p.sequences,
            wall_seconds: p.wall_seconds,
            val_bits_per_seq: val.cost,
            val_loss: val.loss_bits,
            val_optimal: val.optimal,
            cost_kind: self.task.cost_kind().to_string(),
            seq_per_s: p.sequences as f64 / p.wall_seconds.max(1e-9),
            converged: p.converged_at_sequences.is_some(),
            converged_at_sequences: p.converged_at_sequences,
            converged_at_seconds: p.converged_at_seconds,
        };
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        write_atomic(&dir.join(files::SUMMARY), text.as_bytes())?;
        Ok(summary)
    }

    fn note_validation(&mut self, val: &EvalStats) {
        let t = &self.config.train;
        let p = &mut self.progress;
        p.last_val_cost = Some(val.cost);
        if t.target_cost > 0.0 && val.cost < t.target_cost {
            p.streak += 1;
            if p.streak >= t.patience.max(1) && p.converged_at_sequences.is_none() {
                p.converged_at_sequences = Some(p.sequences);
                p.converged_at_seconds = Some(p.wall_seconds);
            }
        } else {
            p.streak = 0;
        }
    }
}

/// Training statistics since the last metrics line.
#[derive(Default)]
struct Window {
    steps: u64,
    loss: f64,
    cost: f64,
    sequences: u64,
    started: Option<Instant>,
}

impl Window {
    fn add(&mut self, s: &StepStats) {
        self.started.get_or_insert_with(Instant::now);
        self.steps += 1;
        self.loss += s.loss_bits;
        self.cost += s.cost;
        self.sequences = s.sequences;
    }

    fn record(&mut self, s: &StepStats, wall: f64) -> MetricsRecord {
        let n = self.steps.max(1) as f64;
        let elapsed = self.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let batch = s.sequences as f64 / s.step.max(1) as f64;
        let r = MetricsRecord {
            step: s.step,
            sequences: s.sequences,
            loss: self.loss / n,
            bits_per_seq: self.cost / n,
            seq_per_s: if elapsed > 0.0 {
                self.steps as f64 * batch / elapsed
            } else {
                0.0
            },
            wall_seconds: wall,
            val_bits_per_seq: None,
            val_loss: None,
            val_optimal: None,
        };
        *self = Window {
            started: Some(Instant::now()),
            ..Window::default()
        };
        r
    }
}

/// Appends metrics lines; on resume, first drops lines past the checkpoint's step so the file
/// reads as if the run had never stopped.
struct MetricsWriter {
    file: std::fs::File,
    path: PathBuf,
}

impl MetricsWriter {
    fn open(path: &Path, step: u64) -> Result<Self> {
        let io = |source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            let kept: String = text
                .lines()
                .filter(|line| {
                    serde_json::from_str::<MetricsRecord>(line).is_ok_and(|r| r.step <= step)
                })
                .map(|line| format!("{line}\n"))
                .collect();
            write_atomic(path, kept.as_bytes())?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    fn write(&mut self, record: &MetricsRecord) -> Result<()> {
        let line = serde_json::to_string(record).map_err(|e| TrainError::Config(e.to_string()))?;
        writeln!(self.file, "{line}").map_err(|source| TrainError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Reads a run directory's metrics.
pub fn read_metrics(dir: &Path) -> Result<Vec<MetricsRecord>> {
    let path = dir.join(files::METRICS);
    let text = std::fs::read_to_string(&path).map_err(|source| TrainError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// A trained model loaded back from a run directory.
pub struct LoadedRun {
    /// Its configuration.
    pub config: RunConfig,
    /// The model with the checkpoint's weights.
    pub model: Box<dyn SequenceModel>,
    /// The task.
    pub task: Box<dyn Task>,
    /// Where training stood.
    pub progress: Progress,
}

impl std::fmt::Debug for LoadedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedRun")
            .field("config", &self.config)
            .field("progress", &self.progress)
            .finish()
    }
}

/// Loads the configuration and latest checkpoint of the run in `dir`, building its task and
/// model from the built-in registry.
pub fn load_run(dir: &Path, device: &Device) -> Result<LoadedRun> {
    let registry = Registry::default();
    load_run_with(dir, |config| registry.build(config, device))
}

/// Loads the run in `dir` with a `factory` that builds its task and a fresh model from its
/// configuration (a registry of your own, or the code that built the parts of a
/// [`Trainer::from_parts`] run); the checkpoint's weights then replace the model's.
pub fn load_run_with<F>(dir: &Path, factory: F) -> Result<LoadedRun>
where
    F: FnOnce(&RunConfig) -> Result<RunParts>,
{
    let config_path = dir.join(files::CONFIG);
    let text = std::fs::read_to_string(&config_path).map_err(|source| TrainError::Io {
        path: config_path.clone(),
        source,
    })?;
    let config = RunConfig::from_toml(&text)?;
    let (task, model) = factory(&config)?;
    check_sizes(model.as_ref(), task.as_ref())?;
    let device = model.params().device().clone();
    let ckpt = checkpoint::load(&dir.join(files::CHECKPOINT), &device)?;
    checkpoint::restore_params(model.params(), &ckpt.tensors)?;
    Ok(LoadedRun {
        config,
        model,
        task,
        progress: ckpt.progress,
    })
}
