//! The `ntm` command: train, evaluate, inspect and benchmark Neural Turing Machines.
//!
//! ```text
//! ntm train --task copy                      # the embedded default config
//! ntm eval  --run runs/copy-lstm-ntm-s0 --lengths 20,40,80,120
//! ntm show  --run runs/copy-lstm-ntm-s0 --length 40 --out copy.png
//! ntm bench --task copy --model lstm-ntm --batch 32
//! ```

mod bench;
mod figure;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::Device;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ntm_tasks::Size;
use ntm_train::trainer::files;
use ntm_train::{
    footprint, EvalStats, Observer, Registry, RunConfig, RunDir, StepStats, TrainError, Trainer,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

// Training allocates and frees the same few hundred tensors every step, some above glibc's
// mmap threshold; glibc then maps and unmaps pages each time. mimalloc reuses them.
#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes allocated and not yet freed, counted while [`COUNTING`] is on (`ntm bench --scaling`
/// reads it to measure what the graph holds for the backward pass).
pub(crate) static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
/// Whether allocations are counted; off, the count costs one relaxed load per allocation.
pub(crate) static COUNTING: AtomicBool = AtomicBool::new(false);

/// mimalloc, with an optional count of live bytes. No allocator crate measures this, so it is
/// written here: a thin wrapper that forwards every call.
struct Counting;

impl Counting {
    fn count(delta: isize) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to mimalloc with the caller's arguments unchanged, so the
// contract of `GlobalAlloc` holds as it does for mimalloc; the count is a side effect only.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        Self::count(layout.size() as isize);
        // SAFETY: forwarded as received.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        Self::count(layout.size() as isize);
        // SAFETY: forwarded as received.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        Self::count(-(layout.size() as isize));
        // SAFETY: forwarded as received.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        Self::count(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded as received.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// mimalloc's `mi_option_purge_delay` (its position in the option enum of mimalloc 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// That option's default in mimalloc 3, in milliseconds.
const MI_DEFAULT_PURGE_DELAY: std::ffi::c_long = 1000;

/// Keeps freed memory mapped. A training step frees everything its graph held (tens of
/// megabytes at batch 32); by default mimalloc hands idle pages back to the OS, and a later step
/// faults them in again, zeroed, which took about 10% of the time at batch 32.
/// The option is only changed when it reads as its default, so a future reordering of the
/// enum cannot set some other option; `MIMALLOC_PURGE_DELAY` in the environment still wins.
#[allow(unsafe_code)]
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: reading and setting an allocator option has no preconditions; mimalloc
    // documents both as callable at any time.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MI_DEFAULT_PURGE_DELAY {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
}

#[derive(Parser)]
#[command(
    name = "ntm",
    version,
    about = "Train, evaluate and inspect Neural Turing Machines"
)]
struct Cli {
    /// Threads a run may use for the parts of a batch (`train.shards`); default: the machine's
    /// cores. candle's own kernels stay on one thread (RAYON_NUM_THREADS overrides), which is
    /// fastest at the paper's sizes; see the README.
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Device: `cpu`, or `cuda` / `cuda:N` in a build with the `cuda` feature.
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    /// `fused` runs the CPU kernels; `reference` the composition of candle operations they are
    /// tested against (the same function, slower), for comparisons.
    #[arg(long, global = true, value_enum, default_value_t = Kernels::Fused)]
    kernels: Kernels,
    /// The memory, in GiB, a request may take; larger ones are refused before anything is
    /// allocated (default: the memory available now).
    #[arg(long, global = true, value_name = "GIB")]
    memory_limit: Option<f64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kernels {
    Fused,
    Reference,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on a task (the embedded default config unless --config or --set say otherwise).
    Train(TrainArgs),
    /// Cost of a trained run on fresh sequences of the given lengths.
    Eval(EvalArgs),
    /// A paper-style figure of one sequence: inputs, targets, outputs, read and write weightings.
    Show(ShowArgs),
    /// Training throughput of a standard config.
    Bench(bench::BenchArgs),
}

#[derive(clap::Args)]
struct TrainArgs {
    /// copy, repeat-copy, associative-recall, ngrams, priority-sort or memory-reuse.
    #[arg(long)]
    task: Option<String>,
    /// A model: `controller-memory` (ff-ntm, lstm-ntm, gru-ntm) or a controller alone (ff,
    /// lstm, gru); default: the config file's, else ff-ntm for associative recall and lstm-ntm
    /// for the other tasks.
    #[arg(long)]
    model: Option<String>,
    /// A TOML run config; its values override the embedded defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one value, e.g. `--set train.batch_size=16 --set model.memory.rows=64`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Run directory (default: `runs/TASK-MODEL-sSEED`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// The seed every random choice derives from.
    #[arg(long)]
    seed: Option<u64>,
    /// Print the resolved config and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// A run directory written by `ntm train`.
    #[arg(long)]
    run: PathBuf,
    /// Comma-separated sizes: lengths (`20,40`), item counts for recall, `LxR` for repeat copy.
    #[arg(long, value_delimiter = ',')]
    lengths: Option<Vec<Size>>,
    /// Sequences per size.
    #[arg(long, default_value_t = 1000)]
    sequences: usize,
    /// Print one JSON object mapping each size to bits per sequence.
    #[arg(long)]
    json: bool,
    /// Run with this many memory rows instead of the rows the model trained with (default: the
    /// run's `eval.rows`, if it sets them).
    #[arg(long)]
    rows: Option<usize>,
}

#[derive(clap::Args)]
struct ShowArgs {
    /// A run directory written by `ntm train`.
    #[arg(long)]
    run: PathBuf,
    /// Sequence length (or `LxR` for repeat copy, items for recall).
    #[arg(long)]
    length: Option<Size>,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the shown sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run with this many memory rows instead of the rows the model trained with (default: the
    /// run's `eval.rows`, if it sets them).
    #[arg(long)]
    rows: Option<usize>,
}

fn device(name: &str) -> Result<Device> {
    let Some(rest) = name.strip_prefix("cuda") else {
        return match name {
            "cpu" => Ok(Device::Cpu),
            other => Err(format!("unknown device `{other}` (expected cpu, cuda or cuda:N)").into()),
        };
    };
    let ordinal = match rest {
        "" => 0,
        _ => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                format!("device `{name}`: expected cuda or cuda:N with N a GPU number, like cuda:0")
            })?,
    };
    if !cfg!(feature = "cuda") {
        return Err(format!(
            "device `{name}`: this build of ntm has no CUDA support; rebuild it with `--features cuda`"
        )
        .into());
    }
    Device::new_cuda(ordinal).map_err(|e| {
        format!("device `{name}`: no usable CUDA GPU {ordinal} on this machine ({e})").into()
    })
}

/// The memory a request may take, in bytes: `--memory-limit`, else what the OS reports as
/// available now.
fn memory_limit(gib: Option<f64>) -> Result<f64> {
    match gib {
        Some(g) if g.is_finite() && g > 0.0 => Ok(g * (1u64 << 30) as f64),
        Some(g) => Err(format!("--memory-limit {g}: expected a positive number of GiB").into()),
        None => Ok(available_memory().unwrap_or(ntm_train::footprint::ABSURD_BYTES)),
    }
}

/// A refusal for size, with the flag that raises the limit.
fn with_flag(e: TrainError) -> Box<dyn std::error::Error> {
    match e {
        TrainError::TooLarge { .. } => format!("{e}; raise it with --memory-limit GIB").into(),
        other => other.into(),
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes (Linux; `None` elsewhere). Read by hand: a
/// system-information crate would add a large dependency for this one number.
fn available_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// The first SIGINT or SIGTERM asks the run to stop after the current update, with a
/// checkpoint; a second one exits at once (the last checkpoint on disk stays intact, since
/// checkpoints are replaced by rename).
struct Signals {
    stop: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Signals {
    fn install() -> Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, stop.clone())?;
            signal_hook::flag::register(signal, stop.clone())?;
            signal_hook::flag::register_usize(signal, which.clone(), signal as usize)?;
        }
        Ok(Self { stop, which })
    }

    fn exit_code(&self) -> u8 {
        128 + self.which.load(Ordering::SeqCst) as u8
    }
}

struct Bar(ProgressBar, Arc<AtomicBool>);

impl Observer for Bar {
    fn should_stop(&mut self) -> bool {
        self.1.load(Ordering::SeqCst)
    }

    fn on_step(&mut self, s: &StepStats) {
        self.0.set_position(s.sequences);
        if s.step.is_multiple_of(10) {
            let rate = self.0.per_sec();
            self.0.set_message(format!(
                "step {} | {rate:.0} seq/s | loss {:.2} | bits {:.2}",
                s.step, s.loss_bits, s.cost
            ));
        }
    }

    fn on_eval(&mut self, step: u64, e: &EvalStats) {
        let line = format!(
            "step {step:>7}: validation {:.3} bits/seq (cross-entropy {:.2})",
            e.cost, e.loss_bits
        );
        if self.0.is_hidden() {
            eprintln!("{line}");
        } else {
            self.0.println(line);
        }
    }
}

/// What ended a command that did not fail: success, or a signal after a checkpoint.
enum Outcome {
    Done,
    Interrupted(u8),
}

fn train(args: TrainArgs, dev: &Device, limit: f64, threads: usize) -> Result<Outcome> {
    let mut sets = args.sets.clone();
    if let Some(seed) = args.seed {
        sets.push(format!("seed={seed}"));
    }
    if args.resume {
        return resume(args, sets, dev, threads);
    }
    let file = match &args.config {
        Some(path) => {
            Some(std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let config = RunConfig::resolve(
        args.task.as_deref(),
        args.model.as_deref(),
        file.as_deref(),
        &sets,
    )?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{}-{}-s{}",
            config.task.name(),
            config.model_name(),
            config.seed
        ))
    });
    if args.print_config {
        print!("{}", config.to_toml()?);
        return Ok(Outcome::Done);
    }
    let task = Registry::default().tasks.build(&config.task)?;
    footprint::training(&config, task.as_ref())
        .check(limit)
        .map_err(with_flag)?;
    if out.join(files::CHECKPOINT).exists() {
        return Err(format!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            out.display()
        )
        .into());
    }
    // Checked before the lock file is created too, so a user's directory is left untouched.
    ntm_train::rundir::check_fresh_at(&out)?;
    let mut trainer = Trainer::new(config, dev)?;
    trainer.set_threads(threads);
    let dir = RunDir::acquire(&out)?;
    dir.check_fresh()?;
    run_training(trainer, &dir)
}

fn resume(args: TrainArgs, sets: Vec<String>, dev: &Device, threads: usize) -> Result<Outcome> {
    let out = args.out.clone().ok_or("--resume needs --out DIR")?;
    if args.config.is_some() {
        return Err("--resume continues the run with its own config; --config is not taken (change budgets with --set train.max_sequences=N)".into());
    }
    if !out.join(files::CHECKPOINT).exists() {
        return Err(format!("{} holds no checkpoint to resume", out.display()).into());
    }
    // Locked before anything is read, so no other writer changes the run underneath.
    let dir = RunDir::acquire(&out)?;
    let saved = ntm_train::run_config(&out)?;
    let config = RunConfig::resolve(
        args.task.as_deref(),
        args.model.as_deref(),
        Some(&saved.to_toml()?),
        &sets,
    )?;
    if args.print_config {
        print!("{}", config.to_toml()?);
        return Ok(Outcome::Done);
    }
    let mut trainer = Trainer::new(config, dev)?;
    trainer.set_threads(threads);
    trainer.load_checkpoint(&dir.join(files::CHECKPOINT))?;
    run_training(trainer, &dir)
}

fn run_training(mut trainer: Trainer, dir: &RunDir) -> Result<Outcome> {
    let signals = Signals::install()?;
    let config = trainer.config().clone();
    eprintln!(
        "training {} on {} ({} parameters) into {}",
        config.model_name(),
        config.task.name(),
        trainer.model().param_count(),
        dir.path().display()
    );
    let bar = ProgressBar::new(config.train.max_sequences);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {human_pos}/{human_len} seq  {msg}",
        )?
        .progress_chars("=> "),
    );
    bar.set_position(trainer.progress().sequences);
    let mut observer = Bar(bar, signals.stop.clone());
    let summary = match trainer.run_in(dir, &mut observer) {
        Ok(summary) => summary,
        Err(TrainError::Interrupted { step, dir }) => {
            observer.0.finish_and_clear();
            eprintln!(
                "stopped by a signal after step {step}; checkpoint and metrics are in {}; continue with: ntm train --resume --out {}",
                dir.display(),
                dir.display()
            );
            return Ok(Outcome::Interrupted(signals.exit_code()));
        }
        Err(e) => return Err(e.into()),
    };
    observer.0.finish_and_clear();
    let target = config.train.target_cost;
    let converged = match summary.converged_at_sequences {
        Some(n) => format!(
            "converged at {n} sequences ({:.0} s)",
            summary.converged_at_seconds.unwrap_or(0.0)
        ),
        None if target > 0.0 => format!("did not reach {target} bits/seq"),
        None => "no target set".to_string(),
    };
    println!(
        "{} {}: {:.3} bits/seq on validation after {} sequences in {:.0} s ({:.0} seq/s); {converged}; summary in {}",
        summary.task,
        summary.model,
        summary.val_bits_per_seq,
        summary.sequences,
        summary.wall_seconds,
        summary.seq_per_s,
        dir.join(files::SUMMARY).display()
    );
    Ok(Outcome::Done)
}

fn eval(args: EvalArgs, dev: &Device, limit: f64) -> Result<()> {
    if args.sequences == 0 {
        return Err("--sequences 0: an evaluation needs at least one sequence".into());
    }
    let run = ntm_train::load_run_for_eval(&args.run, dev, args.rows)?;
    let sizes = match args.lengths.clone() {
        Some(sizes) => sizes,
        None => Registry::default().eval_sizes(run.task.name())?,
    };
    if sizes.is_empty() {
        return Err(format!(
            "task {} has no default sizes: pass --lengths",
            run.task.name()
        )
        .into());
    }
    let batch = run.config.train.val_batch;
    for &size in &sizes {
        footprint::inference(
            run.config.model.as_ref(),
            run.task.as_ref(),
            Some(size),
            args.sequences,
            batch,
        )
        .check(limit)
        .map_err(with_flag)?;
    }
    let mut results = Vec::new();
    for size in sizes {
        let stats = ntm_train::evaluate(
            run.model.as_ref(),
            run.task.as_ref(),
            args.sequences,
            batch,
            Some(size),
            0xE7A1,
        )?;
        results.push((size, stats));
    }
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(s, e)| (s.to_string(), serde_json::json!(e.cost)))
            .collect();
        println!("{}", serde_json::Value::Object(map));
    } else {
        println!(
            "{} {} ({}), {} sequences per size",
            run.task.name(),
            run.config.model_name(),
            args.run.display(),
            args.sequences
        );
        // N-grams' cost is judged against the Bayes-optimal predictor on the same sequences.
        let optimum = results.iter().any(|(_, e)| e.optimal.is_some());
        let header = format!("{:>8}  {:>12}  {:>14}", "size", "bits/seq", "cross-entropy");
        match optimum {
            true => println!("{header}  {:>13}  {:>8}", "Bayes optimum", "above"),
            false => println!("{header}"),
        }
        for (size, e) in &results {
            let line = format!(
                "{:>8}  {:>12.3}  {:>14.3}",
                size.to_string(),
                e.cost,
                e.loss_bits
            );
            match e.optimal {
                Some(opt) => println!("{line}  {opt:>13.3}  {:>8.3}", e.cost - opt),
                None => println!("{line}"),
            }
        }
    }
    Ok(())
}

fn show(args: ShowArgs, dev: &Device, limit: f64) -> Result<()> {
    let run = ntm_train::load_run_for_eval(&args.run, dev, args.rows)?;
    footprint::inference(
        run.config.model.as_ref(),
        run.task.as_ref(),
        args.length,
        1,
        1,
    )
    .check(limit)
    .map_err(with_flag)?;
    if let Some(steps) = run.task.max_steps(args.length) {
        if steps > ntm_plot::MAX_WIDTH {
            return Err(format!(
                "a figure of {steps} time steps does not fit in {} pixels at one pixel per step; choose a shorter --length",
                ntm_plot::MAX_WIDTH
            )
            .into());
        }
    }
    let (batch, probs, traces) = ntm_train::trace(
        run.model.as_ref(),
        run.task.as_ref(),
        args.length,
        args.seed,
    )?;
    let figure = figure::sequence_figure(
        &batch,
        &probs,
        &traces,
        &format!("{} {}", run.task.name(), run.config.model_name()),
    )?;
    figure.save_png(&args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

fn run(cli: Cli, threads: usize) -> Result<Outcome> {
    let limit = memory_limit(cli.memory_limit)?;
    let dev = device(&cli.device)?;
    ntm::kernels::set_enabled(cli.kernels == Kernels::Fused);
    match cli.command {
        Command::Train(a) => train(a, &dev, limit, threads),
        Command::Eval(a) => eval(a, &dev, limit).map(|()| Outcome::Done),
        Command::Show(a) => show(a, &dev, limit).map(|()| Outcome::Done),
        Command::Bench(a) => bench::run(a, &dev, threads, limit).map(|()| Outcome::Done),
    }
}

/// Keeps candle's rayon pool at one thread unless RAYON_NUM_THREADS says otherwise (set before
/// candle or rayon first look at it), and returns the threads for the parts of a batch.
fn set_threads(threads: Option<usize>) -> usize {
    let from_env = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &usize| n > 0);
    std::env::set_var("RAYON_NUM_THREADS", from_env.unwrap_or(1).to_string());
    threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let threads = set_threads(cli.threads);
    match run(cli, threads) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Interrupted(code)) => ExitCode::from(code),
        Err(e) => {
            // One line, whatever the underlying message looks like.
            let message = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
