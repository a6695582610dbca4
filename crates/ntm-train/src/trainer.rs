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
use crate::config::{ConfigChange, Registry, RunConfig, RunParts, TrainConfig};
use crate::loss::{bit_errors_tensor, masked_bce};
use crate::optim::{clip_to_norm, clip_values, global_norm_tensor, Optimizer};
use crate::rundir::RunDir;
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
    /// Where a driver (the sweep) keeps the output of the commands it runs; not written by
    /// the trainer, but allowed beside a fresh run.
    pub const LOG: &str = "train.log";
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
    /// The learning rate of the update.
    pub lr: f64,
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
    /// The learning rate of the line's last update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
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
    /// The device of the last session (`cpu`, `cuda:0`).
    #[serde(default)]
    pub device: String,
}

/// Receives progress from [`Trainer::run`]; the command line draws a progress bar with it.
pub trait Observer {
    /// Called after every update.
    fn on_step(&mut self, _stats: &StepStats) {}
    /// Called after every validation.
    fn on_eval(&mut self, _step: u64, _stats: &EvalStats) {}
    /// Asked before every update: `true` stops the run after a checkpoint of the last update
    /// (the command line answers it from SIGINT and SIGTERM).
    fn should_stop(&mut self) -> bool {
        false
    }
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
    let params = model.params();
    let inputs = to_tensor(&batch.inputs, params.device())?.to_dtype(params.dtype())?;
    let logits = model.forward(&inputs)?;
    score_logits(&logits, task, batch)
}

/// Cost of the logits `[steps, batch, outputs]` a model gave for `batch`, with one read from
/// the device.
pub fn score_logits(logits: &Tensor, task: &dyn Task, batch: &Batch) -> Result<EvalStats> {
    let device = logits.device();
    let targets = to_tensor(&batch.targets, device)?.to_dtype(logits.dtype())?;
    let mask = to_tensor(&batch.mask, device)?.to_dtype(logits.dtype())?;
    let loss = masked_bce(logits, &targets, &mask)?.to_dtype(DType::F64)?;
    let errors = bit_errors_tensor(logits, &targets, &mask)?.to_dtype(DType::F64)?;
    let measured = read_host(&Tensor::stack(&[loss, errors], 0)?)?;
    let loss_bits = measured[0] / std::f64::consts::LN_2;
    let errors = measured[1];
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

/// Reads a vector back from the device, counting the read ([`host_reads`]).
fn read_host(t: &Tensor) -> Result<Vec<f64>> {
    HOST_READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(t.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

static HOST_READS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times training and scoring have read values back from the device in this process:
/// one per [`Trainer::step`] and one per scored batch. On a GPU each read waits for the device;
/// tests use the count to show that a step's reads do not grow with the model or the sequence.
pub fn host_reads() -> u64 {
    HOST_READS.load(std::sync::atomic::Ordering::Relaxed)
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
    let params = model.params();
    let inputs = to_tensor(&batch.inputs, params.device())?.to_dtype(params.dtype())?;
    let (logits, traces) = model.forward_traced(&inputs)?;
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

/// The loss, the bit errors (scalars on the device) and the gradients of a batch or a part.
type Measured = (Tensor, Tensor, Vec<Tensor>);

/// Trains one model on one task.
pub struct Trainer {
    config: RunConfig,
    model: Box<dyn SequenceModel>,
    task: Box<dyn Task>,
    optimizer: Optimizer,
    validation: Vec<Batch>,
    progress: Progress,
    /// The step of the checkpoint this trainer loaded or last wrote, if any.
    on_disk: Option<u64>,
    /// Changes of the configuration since the loaded checkpoint, for the metrics.
    changes: Vec<ConfigChange>,
    /// Threads for the parts of a batch.
    threads: usize,
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
            eval: Default::default(),
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
        crate::footprint::training(&config, task.as_ref()).check(crate::footprint::ABSURD_BYTES)?;
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
            on_disk: None,
            changes: Vec::new(),
            threads: 1,
        })
    }

    /// Restores weights, optimiser moments and progress from a checkpoint of this configuration.
    ///
    /// The checkpoint's own configuration is the run's: this trainer's may differ from it only
    /// in [`RESUMABLE_KEYS`](crate::config::RESUMABLE_KEYS) (budgets, how often the run writes,
    /// the evaluation memory). Any other difference is an error naming the key; the accepted
    /// ones are recorded in the metrics at the step where the run resumes.
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<()> {
        let ckpt = checkpoint::load(path, self.model.params().device())?;
        let saved = RunConfig::from_toml(&ckpt.config)
            .map_err(|e| TrainError::Checkpoint(format!("{}: its config: {e}", path.display())))?;
        let changes = saved.resume_changes(&self.config)?;
        checkpoint::restore_params(self.model.params(), &ckpt.tensors)?;
        self.optimizer
            .load_state(&ckpt.tensors, ckpt.progress.step)?;
        self.on_disk = Some(ckpt.progress.step);
        self.progress = ckpt.progress;
        self.changes = changes;
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

    /// Changes the budgets (for a resumed run), keeping everything else; the change is
    /// recorded in the metrics at the step where the run resumes.
    pub fn set_train_limits(&mut self, max_sequences: u64, max_seconds: f64) -> Result<()> {
        let before = self.config.clone();
        self.config.train.max_sequences = max_sequences;
        self.config.train.max_seconds = max_seconds;
        self.config.validate()?;
        for change in before.changes_to(&self.config)? {
            self.changes.retain(|c| c.key != change.key);
            self.changes.push(change);
        }
        Ok(())
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

    /// One update on a fresh batch. A non-finite loss, gradient or updated parameter is an
    /// error naming the step, and leaves the parameters untouched.
    ///
    /// Everything the step measures stays on the device until one read at its end, of four
    /// numbers: the loss, the bit errors, the gradient norm and a finiteness flag of the new
    /// parameters. So a step makes one round trip to the host, whatever the model's size and
    /// the sequence's length ([`host_reads`] counts them).
    pub fn step(&mut self) -> Result<StepStats> {
        let step = self.progress.step + 1;
        let t = &self.config.train;
        let mut rng = stream(self.config.seed, &format!("train/{step}"));
        let batch = self.task.batch(t.batch_size, None, &mut rng)?;
        let params = self.model.params();
        let (device, dtype) = (params.device().clone(), params.dtype());
        let inputs = to_tensor(&batch.inputs, &device)?.to_dtype(dtype)?;
        let targets = to_tensor(&batch.targets, &device)?.to_dtype(dtype)?;
        let mask = to_tensor(&batch.mask, &device)?.to_dtype(dtype)?;
        let (loss, errors, mut grads) = if t.shards <= 1 {
            let logits = self.model.forward(&inputs)?;
            let loss = masked_bce(&logits, &targets, &mask)?;
            let errors = bit_errors_tensor(&logits, &targets, &mask)?;
            let grads = self.optimizer.gradients(&loss.backward()?)?;
            (loss, errors, grads)
        } else {
            self.sharded_gradients(&inputs, &targets, &mask, t.shards)?
        };
        if t.clip_value > 0.0 {
            clip_values(&mut grads, t.clip_value)?;
        }
        let norm = global_norm_tensor(&grads)?;
        if t.clip_norm > 0.0 {
            clip_to_norm(&mut grads, &norm, t.clip_norm)?;
        }
        self.optimizer
            .set_lr_scale(t.schedule.scale(self.progress.sequences));
        let update = self.optimizer.prepare(&grads)?;
        let measured = read_host(&Tensor::stack(
            &[
                loss.to_dtype(DType::F64)?,
                errors.to_dtype(DType::F64)?,
                norm,
                update.finite_flag()?,
            ],
            0,
        )?)?;
        let [loss_nats, errors, grad_norm, flag] = measured[..] else {
            return Err(TrainError::Config(
                "the step measured the wrong count".into(),
            ));
        };
        let problem = if !loss_nats.is_finite() {
            Some("loss")
        } else if !grad_norm.is_finite() {
            Some("gradient")
        } else if !flag.is_finite() {
            Some("parameters after the update")
        } else {
            None
        };
        if let Some(what) = problem {
            return Err(TrainError::NonFinite { step, what });
        }
        self.optimizer.commit(update)?;
        self.progress.step = step;
        self.progress.sequences += batch.batch_size() as u64;
        let loss_bits = loss_nats / std::f64::consts::LN_2;
        let cost = match self.task.cost_kind() {
            CostKind::BitErrors => errors,
            CostKind::CrossEntropyBits => loss_bits,
        };
        Ok(StepStats {
            step,
            sequences: self.progress.sequences,
            loss_bits,
            cost,
            grad_norm,
            time_steps: batch.steps(),
            lr: self.optimizer.lr(),
        })
    }

    /// The loss, bit errors and gradients of a batch split into `shards` parts along the batch,
    /// each weighted by its share of the sequences and summed in order, the parts running on
    /// up to [`Trainer::set_threads`] threads: the same numbers whatever the thread count.
    fn sharded_gradients(
        &self,
        inputs: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        shards: usize,
    ) -> Result<Measured> {
        let batch = inputs.dim(1)?;
        let shards = shards.min(batch);
        let model = self.model.as_ref();
        let optimizer = &self.optimizer;
        let part = |k: usize| -> Result<Measured> {
            let (start, end) = (k * batch / shards, (k + 1) * batch / shards);
            let slice = |t: &Tensor| t.narrow(1, start, end - start)?.contiguous();
            let (targets, mask) = (slice(targets)?, slice(mask)?);
            let logits = model.forward(&slice(inputs)?)?;
            let weight = (end - start) as f64 / batch as f64;
            let loss = (masked_bce(&logits, &targets, &mask)? * weight)?;
            let errors = (bit_errors_tensor(&logits, &targets, &mask)? * weight)?;
            let grads = optimizer.gradients(&loss.backward()?)?;
            Ok((loss, errors, grads))
        };
        let workers = self.threads.clamp(1, shards);
        let mut parts: Vec<Option<Result<Measured>>> = (0..shards).map(|_| None).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (1..workers)
                .map(|w| {
                    let part = &part;
                    scope.spawn(move || {
                        (w..shards)
                            .step_by(workers)
                            .map(|k| (k, part(k)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for k in (0..shards).step_by(workers) {
                parts[k] = Some(part(k));
            }
            for handle in handles {
                // A worker that panicked leaves its parts empty; that is reported below.
                if let Ok(done) = handle.join() {
                    for (k, result) in done {
                        parts[k] = Some(result);
                    }
                }
            }
        });
        let mut total: Option<Measured> = None;
        for part in parts {
            let (loss, errors, grads) = part.ok_or_else(|| {
                TrainError::Config("a training thread stopped without a result".into())
            })??;
            total = Some(match total {
                None => (loss, errors, grads),
                Some((l, e, g)) => (
                    (l + loss)?,
                    (e + errors)?,
                    g.iter()
                        .zip(&grads)
                        .map(|(a, b)| a + b)
                        .collect::<candle_core::Result<Vec<_>>>()?,
                ),
            });
        }
        total.ok_or_else(|| TrainError::Config("a batch of no sequences".into()))
    }

    /// Threads a step may use for the parts of a batch (`train.shards`); 1 by default. The
    /// result of a step does not depend on it.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Cost on the fixed validation set; a non-finite cost or loss is an error.
    pub fn validate(&self) -> Result<EvalStats> {
        let parts = self
            .validation
            .iter()
            .map(|b| score(self.model.as_ref(), self.task.as_ref(), b))
            .collect::<Result<Vec<_>>>()?;
        let stats = merge_stats(&parts);
        if !(stats.cost.is_finite() && stats.loss_bits.is_finite()) {
            return Err(TrainError::NonFinite {
                step: self.progress.step,
                what: "validation cost",
            });
        }
        Ok(stats)
    }

    fn done(&self) -> bool {
        let t = &self.config.train;
        self.progress.sequences >= t.max_sequences
            || (t.max_seconds > 0.0 && self.progress.wall_seconds >= t.max_seconds)
            || self.progress.converged_at_sequences.is_some()
    }

    /// Trains until a budget is spent or the target is met, writing metrics, checkpoints and
    /// finally `summary.json` into `dir`. Call [`Trainer::load_checkpoint`] first to resume.
    ///
    /// The directory is locked for the whole run ([`RunDir`]). A fresh run needs it empty or
    /// holding a run that never wrote a checkpoint. An error names what went wrong and what the
    /// directory holds; a stop asked for by [`Observer::should_stop`] first writes a checkpoint
    /// and is [`TrainError::Interrupted`].
    pub fn run(&mut self, dir: &Path, observer: &mut dyn Observer) -> Result<Summary> {
        let dir = RunDir::acquire(dir)?;
        if self.on_disk.is_none() {
            dir.check_fresh()?;
        }
        self.run_in(&dir, observer)
    }

    /// [`Trainer::run`] in a directory already locked (and checked) by the caller.
    pub fn run_in(&mut self, dir: &RunDir, observer: &mut dyn Observer) -> Result<Summary> {
        match self.train_in(dir, observer) {
            Ok(summary) => Ok(summary),
            Err(e @ (TrainError::Interrupted { .. } | TrainError::Busy { .. })) => Err(e),
            Err(cause) => {
                let on_disk = match self.on_disk {
                    Some(step) => format!(
                        "the checkpoint in {} is of step {step} and is kept",
                        dir.path().display()
                    ),
                    None => format!("no checkpoint was written to {}", dir.path().display()),
                };
                Err(TrainError::Stopped {
                    cause: Box::new(cause),
                    on_disk,
                })
            }
        }
    }

    fn checkpoint_to(&mut self, path: &Path) -> Result<()> {
        self.save_checkpoint(path)?;
        self.on_disk = Some(self.progress.step);
        Ok(())
    }

    fn train_in(&mut self, dir: &RunDir, observer: &mut dyn Observer) -> Result<Summary> {
        // The metrics are read (and refused if they are not this program's) before anything
        // in the directory is written.
        let mut metrics = MetricsWriter::open(&dir.join(files::METRICS), self.progress.step)?;
        write_atomic(&dir.join(files::CONFIG), self.config.to_toml()?.as_bytes())?;
        metrics.write_line(&SessionRecord {
            step: self.progress.step,
            device: device_name(self.model.params().device()),
            config_changes: std::mem::take(&mut self.changes),
        })?;
        let checkpoint_path = dir.join(files::CHECKPOINT);
        let t = self.config.train.clone();
        let session = Instant::now();
        let wall_before = self.progress.wall_seconds;
        let mut window = Window::default();
        let mut last_eval: Option<(u64, EvalStats)> = None;
        let mut last: Option<StepStats> = None;
        while !self.done() {
            if observer.should_stop() {
                self.progress.wall_seconds = wall_before + session.elapsed().as_secs_f64();
                if let Some(stats) = last.filter(|_| window.steps > 0) {
                    metrics.write(&window.record(&stats, self.progress.wall_seconds))?;
                }
                if self.on_disk != Some(self.progress.step) {
                    self.checkpoint_to(&checkpoint_path)?;
                }
                return Err(TrainError::Interrupted {
                    step: self.progress.step,
                    dir: dir.path().to_path_buf(),
                });
            }
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
                self.checkpoint_to(&checkpoint_path)?;
            }
            last = Some(stats);
        }
        // The closing validation reports; it does not count toward the target's streak, so a
        // run stopped by a budget and resumed converges where an uninterrupted one does.
        let val = match last_eval {
            Some((step, val)) if step == self.progress.step => val,
            _ => self.validate()?,
        };
        self.progress.wall_seconds = wall_before + session.elapsed().as_secs_f64();
        self.checkpoint_to(&checkpoint_path)?;
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
            device: device_name(self.model.params().device()),
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
            lr: Some(s.lr),
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

/// A line of `metrics.jsonl` written when a session of the run starts (the first, and each
/// resume): where it runs, and what a resume changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The step at which the session starts.
    pub step: u64,
    /// The device it trains on (`cpu`, `cuda:0`).
    pub device: String,
    /// The configuration changes a resume made (none for the first session).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_changes: Vec<ConfigChange>,
}

/// A device's name as the command line takes it: `cpu`, `cuda:0`, `metal:0`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// The lines of a metrics file as JSON values with their steps. A last line without its
/// newline is a write cut short by a kill and is left out; any other line that is not a JSON
/// object with a `step` is an error naming the file and the line.
fn metrics_lines(path: &Path, text: &str) -> Result<Vec<(u64, serde_json::Value)>> {
    let torn = !text.is_empty() && !text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let parsed = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| Some((v.get("step")?.as_u64()?, v)));
        match parsed {
            Some(entry) => out.push(entry),
            None if torn && i + 1 == lines.len() => {}
            None => {
                return Err(TrainError::Corrupt {
                    path: path.to_path_buf(),
                    why: format!(
                        "line {} is not a metrics record of this program; fix or remove it",
                        i + 1
                    ),
                })
            }
        }
    }
    Ok(out)
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
            let kept: String = metrics_lines(path, &text)?
                .into_iter()
                .filter(|(s, _)| *s <= step)
                .map(|(_, v)| format!("{v}\n"))
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

    fn write_line<T: Serialize>(&mut self, value: &T) -> Result<()> {
        let mut line =
            serde_json::to_string(value).map_err(|e| TrainError::Config(e.to_string()))?;
        line.push('\n');
        // One write per line, so a kill can only cut the last one short.
        self.file
            .write_all(line.as_bytes())
            .map_err(|source| TrainError::Io {
                path: self.path.clone(),
                source,
            })
    }

    fn write(&mut self, record: &MetricsRecord) -> Result<()> {
        self.write_line(record)
    }
}

/// Reads a run directory's metrics records (the lines of [`SessionRecord`]s are left out).
pub fn read_metrics(dir: &Path) -> Result<Vec<MetricsRecord>> {
    read_lines(dir)
}

/// The sessions recorded in a run directory's metrics: where each ran and what each resume
/// changed.
pub fn read_sessions(dir: &Path) -> Result<Vec<SessionRecord>> {
    read_lines(dir)
}

/// The lines of a run directory's metrics that read as a `T`.
fn read_lines<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<Vec<T>> {
    let path = dir.join(files::METRICS);
    let text = std::fs::read_to_string(&path).map_err(|source| TrainError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(metrics_lines(&path, &text)?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_value(v).ok())
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

/// The configuration of the run in `dir`: the one its checkpoint was trained with. The
/// directory's `config.toml` must agree with it (budgets aside, which a resumed run may have
/// changed); an edited one is an error naming the key.
pub fn run_config(dir: &Path) -> Result<RunConfig> {
    Ok(read_run(dir)?.0)
}

fn read_run(dir: &Path) -> Result<(RunConfig, checkpoint::Checkpoint)> {
    let config_path = dir.join(files::CONFIG);
    let text = std::fs::read_to_string(&config_path).map_err(|source| TrainError::Io {
        path: config_path.clone(),
        source,
    })?;
    let written = RunConfig::from_toml(&text).map_err(|e| TrainError::Corrupt {
        path: config_path.clone(),
        why: e.to_string(),
    })?;
    let checkpoint_path = dir.join(files::CHECKPOINT);
    let ckpt = checkpoint::load(&checkpoint_path, &Device::Cpu)?;
    let config = RunConfig::from_toml(&ckpt.config).map_err(|e| {
        TrainError::Checkpoint(format!("{}: its config: {e}", checkpoint_path.display()))
    })?;
    if let Some(c) = config.fixed_change(&written)? {
        let show = |v: Option<String>| v.unwrap_or_else(|| "absent".into());
        return Err(TrainError::Corrupt {
            path: config_path,
            why: format!(
                "does not match the checkpoint, whose config is the run's: `{}` is {} in the checkpoint and {} here",
                c.key,
                show(c.from),
                show(c.to)
            ),
        });
    }
    Ok((config, ckpt))
}

/// Loads the configuration and latest checkpoint of the run in `dir`, building its task and
/// model from the built-in registry.
pub fn load_run(dir: &Path, device: &Device) -> Result<LoadedRun> {
    let (config, ckpt) = read_run(dir)?;
    assemble_builtin(config, ckpt, device)
}

/// Loads the run in `dir` with a `factory` that builds its task and a fresh model from its
/// configuration (a registry of your own, or the code that built the parts of a
/// [`Trainer::from_parts`] run); the checkpoint's weights then replace the model's.
pub fn load_run_with<F>(dir: &Path, factory: F) -> Result<LoadedRun>
where
    F: FnOnce(&RunConfig) -> Result<RunParts>,
{
    let (config, ckpt) = read_run(dir)?;
    assemble(config, ckpt, factory)
}

/// Loads the run in `dir` like [`load_run`], with a memory of `rows` rows in place of the rows
/// it was trained with: whether what a model learned outgrows its training memory. The NTM
/// memory's initial weightings are carried over by [`ntm::memory::widen_row_logits`] (the heads
/// start at the same offsets from row 0); no other parameter of the built-in memories depends
/// on the rows.
///
/// # Errors
/// As [`load_run`]; and if the model has no memory, `rows` is fewer than it trained with, or a
/// parameter besides the initial weightings has a row per memory row (a learned initial
/// memory).
pub fn load_run_with_rows(dir: &Path, device: &Device, rows: usize) -> Result<LoadedRun> {
    let (config, ckpt) = read_run(dir)?;
    widen(dir, config, ckpt, device, rows)
}

/// Loads the run in `dir` to evaluate it: with `rows` memory rows if given, else with those of
/// its configuration's `eval.rows` ([`load_run_with_rows`]), else as it trained
/// ([`load_run`]). What `ntm eval` and `ntm show` load.
///
/// # Errors
/// As [`load_run_with_rows`].
pub fn load_run_for_eval(dir: &Path, device: &Device, rows: Option<usize>) -> Result<LoadedRun> {
    let (config, ckpt) = read_run(dir)?;
    match rows.or(config.eval.rows) {
        Some(rows) => widen(dir, config, ckpt, device, rows),
        None => assemble_builtin(config, ckpt, device),
    }
}

/// The run of `config` and `ckpt` (read from `dir`) with a memory of `rows` rows.
fn widen(
    dir: &Path,
    mut config: RunConfig,
    mut ckpt: checkpoint::Checkpoint,
    device: &Device,
    rows: usize,
) -> Result<LoadedRun> {
    let resize =
        |why: String| TrainError::Config(format!("{} with {rows} rows: {why}", dir.display()));
    let model = config
        .model
        .as_mut()
        .filter(|m| m.has_memory())
        .ok_or_else(|| resize("the model has no memory".into()))?;
    let trained = crate::config::memory_rows(model).ok_or_else(|| {
        resize(format!(
            "memory `{}` has no `rows` option",
            model.memory.kind
        ))
    })?;
    if (rows as i64) < trained {
        return Err(resize(format!(
            "it trained with {trained}; a memory only grows"
        )));
    }
    if model.memory.kind == "ntm" {
        for name in ntm::memory::ROW_PARAMETERS {
            let key = format!("model.memory.{name}");
            if let Some(logits) = ckpt.tensors.get(&key) {
                let wide = ntm::memory::widen_row_logits(logits, rows)
                    .map_err(|e| resize(format!("`{name}`: {e}")))?;
                ckpt.tensors.insert(key, wide);
            }
        }
    }
    model
        .memory
        .options
        .insert("rows".into(), toml::Value::Integer(rows as i64));
    assemble_builtin(config, ckpt, device).map_err(|e| match e {
        TrainError::Checkpoint(why) => resize(why),
        e => e,
    })
}

/// [`assemble`] with the task and model built by the built-in registry.
fn assemble_builtin(
    config: RunConfig,
    ckpt: checkpoint::Checkpoint,
    device: &Device,
) -> Result<LoadedRun> {
    let registry = Registry::default();
    assemble(config, ckpt, |config| registry.build(config, device))
}

fn assemble<F>(config: RunConfig, ckpt: checkpoint::Checkpoint, factory: F) -> Result<LoadedRun>
where
    F: FnOnce(&RunConfig) -> Result<RunParts>,
{
    let (task, model) = factory(&config)?;
    check_sizes(model.as_ref(), task.as_ref())?;
    checkpoint::restore_params(model.params(), &ckpt.tensors)?;
    Ok(LoadedRun {
        config,
        model,
        task,
        progress: ckpt.progress,
    })
}
