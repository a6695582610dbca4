//! Running a sweep: every run as its own `ntm` process, a few at a time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::experiment::{RunSpec, EVAL, FIGURE};
use crate::{io, Result};

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The `ntm` binary.
    pub ntm: PathBuf,
    /// Output directory; runs go to `out/<run.dir>`.
    pub out: PathBuf,
    /// Runs at a time.
    pub jobs: usize,
    /// Threads of each run.
    pub threads: usize,
    /// The device every run trains and evaluates on (`cpu`, `cuda:0`), passed as `--device`.
    pub device: String,
}

impl SweepOptions {
    /// `jobs` runs at a time, sharing the machine's cores evenly (at least one thread each).
    pub fn new(ntm: PathBuf, out: PathBuf, jobs: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = jobs.max(1);
        Self {
            ntm,
            out,
            jobs,
            threads: (cores / jobs).max(1),
            device: "cpu".to_string(),
        }
    }
}

/// What happened to one run.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It had already finished: nothing was trained.
    Skipped,
    /// Trained from scratch.
    Trained,
    /// Continued from its checkpoint.
    Resumed,
    /// A step failed; the message is the last line it printed.
    Failed(String),
}

/// Runs `ntm` with `args`, appending its output to `log`; the last line of output on failure.
fn ntm(
    opts: &SweepOptions,
    args: &[String],
    log: &Path,
    stdout: Option<&Path>,
) -> std::result::Result<(), String> {
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let err = open(log)?;
    let out = match stdout {
        Some(p) => std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => open(log)?,
    };
    let status = Command::new(&opts.ntm)
        .args(args)
        .arg("--threads")
        .arg(opts.threads.to_string())
        .arg("--device")
        .arg(&opts.device)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot start {}: {e}", opts.ntm.display()))?;
    if status.success() {
        Ok(())
    } else {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        Err(text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed without output")
            .to_string())
    }
}

/// Trains (or resumes, or skips) one run, then writes its generalisation costs and figure.
pub fn run_one(run: &RunSpec, opts: &SweepOptions) -> Outcome {
    let dir = opts.out.join(&run.dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Outcome::Failed(format!("{}: {e}", dir.display()));
    }
    // The name `ntm train` allows beside a fresh run (its `files::LOG`).
    let log = dir.join("train.log");
    let outcome = if dir.join("summary.json").exists() {
        Outcome::Skipped
    } else {
        let resume = dir.join("checkpoint.safetensors").exists();
        let mut args = run.train_args(&opts.out);
        if resume {
            args.push("--resume".into());
        }
        match ntm(opts, &args, &log, None) {
            Ok(()) if resume => Outcome::Resumed,
            Ok(()) => Outcome::Trained,
            Err(e) => return Outcome::Failed(e),
        }
    };
    if !dir.join(EVAL).exists() {
        if let Err(e) = ntm(opts, &run.eval_args(&opts.out), &log, Some(&dir.join(EVAL))) {
            let _ = std::fs::remove_file(dir.join(EVAL));
            return Outcome::Failed(e);
        }
    }
    if let Some(args) = run.show_args(&opts.out) {
        if !dir.join(FIGURE).exists() {
            if let Err(e) = ntm(opts, &args, &log, None) {
                return Outcome::Failed(e);
            }
        }
    }
    outcome
}

/// Runs every run, `opts.jobs` at a time; `progress` hears about each one as it ends. A failed
/// run does not stop the others.
pub fn run_all(
    runs: &[RunSpec],
    opts: &SweepOptions,
    progress: &(dyn Fn(&RunSpec, &Outcome) + Sync),
) -> Result<Vec<Outcome>> {
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    let next = Mutex::new(0usize);
    let results = Mutex::new(vec![Outcome::Skipped; runs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.min(runs.len()).max(1) {
            scope.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(run) = runs.get(i) else { break };
                let outcome = run_one(run, opts);
                progress(run, &outcome);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = outcome;
            });
        }
    });
    Ok(results.into_inner().unwrap_or_else(|e| e.into_inner()))
}
