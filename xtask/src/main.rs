//! `cargo xtask`: experiment sweeps, the fault corpus and the CUDA toolchain setup. Run with no
//! arguments for help.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use xtask::sweep::{run_all, Outcome, SweepOptions};
use xtask::{report, slurm, Experiment, Sweep};

const HELP: &str = "\
cargo xtask <command>

Commands:
  train-all   train every (task, model, seed) of the experiment files in tasks/, then write a report
      --profile P             quick (default), paper, or fast (batches with Adam and a warm-up)
      --tasks copy,ngrams     only these tasks (default all)
      --seeds N               seeds per model (default: the profile's)
      --jobs J                runs at a time (default 2); each gets cores / J threads
      --out DIR               results folder (default results/<profile>)
      --emit-slurm FILE       write a SLURM job-array script instead of running anything
      --ntm PATH              use this ntm binary instead of building it
      --device D              cpu (default), cuda or cuda:N, passed to every ntm command
  report      rebuild DIR/REPORT.md from the run directories in DIR
      --out DIR
  slurm-check start a one-node SLURM cluster here (munged, slurmctld, slurmd in a temporary
              folder), run a tiny sweep's --emit-slurm job array on it (2 tasks x lstm-ntm x 2
              seeds), requeue one task mid-run, check that it resumed from its checkpoint, that
              every task had its own run directory and that a report merged from two folders
              lists every run, then stop the cluster. Needs SLURM and munge (Debian: slurmctld
              slurmd slurm-client munge)
      --install               install the missing packages with apt-get first
      --ntm PATH              use this ntm binary instead of building it
      --sequences N           training sequences per run (default 3000: about 7 s a run with a
                              release build of ntm; a debug build is ten times slower)
      --timeout S             longest wait for the job array (default 600)
      --keep                  keep the temporary folder (it is kept anyway when the check fails)
  faults      throw bad input, faults and concurrency at the ntm binary and print a table
      --kills N               random kill -9 rounds (default 30)
      --ntm PATH              use this ntm binary instead of building it
  cuda-setup  install the pinned CUDA compiler toolchain (nvcc, headers) from PyPI wheels into a
              project folder, then print `export` lines for it: eval \"$(cargo xtask cuda-setup)\"
              makes `cargo check --features cuda` work without a GPU (a second run only checks)
      --target DIR            install folder (default target/cuda-toolkit)
      --compute-cap N         CUDA_COMPUTE_CAP to export, e.g. 80 or 90a (default 90)
      --python PY             the Python with pip to install with (default python3)

Finished runs are skipped and interrupted ones resume from their checkpoints, so running
train-all again continues a sweep; results copied from several machines into one DIR merge
into one report.
";

struct Args(Vec<String>);

impl Args {
    fn value(&mut self, flag: &str) -> Result<Option<String>, String> {
        match self.0.iter().position(|a| a == flag) {
            Some(i) if i + 1 < self.0.len() => {
                let v = self.0.remove(i + 1);
                self.0.remove(i);
                Ok(Some(v))
            }
            Some(_) => Err(format!("{flag} needs a value")),
            None => Ok(None),
        }
    }

    fn flag(&mut self, flag: &str) -> bool {
        match self.0.iter().position(|a| a == flag) {
            Some(i) => {
                self.0.remove(i);
                true
            }
            None => false,
        }
    }

    fn finish(self) -> Result<(), String> {
        match self.0.first() {
            Some(a) => Err(format!("unexpected argument `{a}`\n\n{HELP}")),
            None => Ok(()),
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Builds the release `ntm` binary and returns its path.
fn build_ntm() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "ntm-cli", "--bin", "ntm"])
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the ntm binary failed".into());
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    Ok(target
        .join("release")
        .join(if cfg!(windows) { "ntm.exe" } else { "ntm" }))
}

fn train_all(mut args: Args) -> Result<(), String> {
    let profile = args.value("--profile")?.unwrap_or_else(|| "quick".into());
    let tasks = args.value("--tasks")?;
    let seeds = args
        .value("--seeds")?
        .map(|s| s.parse::<usize>().map_err(|e| format!("--seeds: {e}")))
        .transpose()?;
    let jobs = args
        .value("--jobs")?
        .map(|s| s.parse::<usize>().map_err(|e| format!("--jobs: {e}")))
        .transpose()?
        .unwrap_or(2);
    let out = args
        .value("--out")?
        .map_or_else(|| root().join("results").join(&profile), PathBuf::from);
    let slurm_file = args.value("--emit-slurm")?;
    let ntm = args.value("--ntm")?;
    let device = args.value("--device")?.unwrap_or_else(|| "cpu".into());
    args.finish()?;

    let mut experiments = Experiment::load_dir(&root().join("tasks")).map_err(|e| e.to_string())?;
    if let Some(list) = tasks {
        let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
        if let Some(bad) = wanted
            .iter()
            .find(|t| !experiments.iter().any(|e| e.task == **t))
        {
            return Err(format!("no experiment file for task `{bad}` in tasks/"));
        }
        experiments.retain(|e| wanted.contains(&e.task.as_str()));
    }
    let mut runs = Vec::new();
    for e in &experiments {
        runs.extend(e.runs(&profile, seeds).map_err(|e| e.to_string())?);
    }
    if let Some(file) = slurm_file {
        // The script may be submitted from another folder than this one.
        let out = std::path::absolute(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let script = slurm::script(&runs, &out).map_err(|e| e.to_string())?;
        std::fs::write(&file, script).map_err(|e| format!("{file}: {e}"))?;
        println!(
            "wrote {file}: {} array tasks writing into {}",
            runs.len(),
            out.display()
        );
        // SLURM opens each task's log in the output folder before the script runs, so a
        // missing folder fails every task without a log. Make it where this machine can.
        if std::fs::create_dir_all(&out).is_err() {
            println!(
                "could not create {0} here: run `mkdir -p {0}` where the jobs will see it before sbatch",
                out.display()
            );
        }
        return Ok(());
    }
    let ntm = match ntm {
        Some(p) => PathBuf::from(p),
        None => build_ntm()?,
    };
    let mut opts = SweepOptions::new(ntm, out.clone(), jobs);
    opts.device = device;
    println!(
        "{} runs, {} at a time with {} thread(s) each, into {}",
        runs.len(),
        opts.jobs,
        opts.threads,
        out.display()
    );
    let start = std::time::Instant::now();
    let outcomes = run_all(&runs, &opts, &|run, outcome| {
        let t = start.elapsed().as_secs_f64() / 60.0;
        println!(
            "[{t:5.1} min] {}/{}/seed{}: {outcome:?}",
            run.task, run.model, run.seed
        );
    })
    .map_err(|e| e.to_string())?;
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .count();
    let path = report::write_report(&out).map_err(|e| e.to_string())?;
    println!(
        "report: {} ({:.1} min, {failed} failed)",
        path.display(),
        start.elapsed().as_secs_f64() / 60.0
    );
    if failed > 0 {
        return Err(format!(
            "{failed} of {} runs failed; see their train.log",
            runs.len()
        ));
    }
    Ok(())
}

fn report_cmd(mut args: Args) -> Result<(), String> {
    let out = args.value("--out")?.ok_or("report needs --out DIR")?;
    args.finish()?;
    let path = report::write_report(Path::new(&out)).map_err(|e| e.to_string())?;
    println!("report: {}", path.display());
    Ok(())
}

fn faults_cmd(mut args: Args) -> Result<(), String> {
    let kills = match args.value("--kills")? {
        Some(k) => k
            .parse()
            .map_err(|_| format!("--kills {k}: expected a count"))?,
        None => 30,
    };
    let ntm = args.value("--ntm")?;
    args.finish()?;
    let ntm = match ntm {
        Some(p) => std::fs::canonicalize(&p).map_err(|e| format!("{p}: {e}"))?,
        None => build_ntm()?,
    };
    let scratch = tempfile::tempdir().map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let start = std::time::Instant::now();
    let results = xtask::faults::run_corpus(&ntm, scratch.path(), kills)?;
    print!("{}", xtask::faults::table(&results));
    println!("({:.0} s)", start.elapsed().as_secs_f64());
    let failed = results.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        return Err(format!("{failed} cases failed"));
    }
    Ok(())
}

/// Installs the SLURM and munge packages with apt-get, refreshing the package lists if the
/// first attempt fails.
#[cfg(unix)]
fn install_slurm() -> Result<(), String> {
    use xtask::slurm_check::PACKAGES;
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("cannot run apt-get: {e}"))
    };
    println!("installing {} with apt-get", PACKAGES.join(" "));
    if install()?.success() {
        return Ok(());
    }
    let updated = Command::new("apt-get")
        .arg("update")
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if updated.success() && install()?.success() {
        return Ok(());
    }
    Err(format!(
        "installing SLURM failed (apt-get needs root); run: {}",
        xtask::slurm_check::install_command()
    ))
}

#[cfg(unix)]
fn slurm_check_cmd(mut args: Args) -> Result<(), String> {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use xtask::slurm_check::{self, CheckOptions, Cluster, Tools};

    let install = args.flag("--install");
    let keep = args.flag("--keep");
    let ntm = args.value("--ntm")?;
    let timeout = match args.value("--timeout")? {
        Some(t) => t
            .parse::<u64>()
            .map_err(|_| format!("--timeout {t}: expected seconds"))?,
        None => 600,
    };
    let sequences = match args.value("--sequences")? {
        Some(n) => n
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("--sequences {n}: expected a positive count"))?,
        None => slurm_check::SEQUENCES,
    };
    args.finish()?;
    let tools = match Tools::find() {
        Ok(tools) => tools,
        Err(missing) if install => {
            println!("missing: {}", missing.join(", "));
            install_slurm()?;
            Tools::find().map_err(|m| format!("still missing after the install: {}", m.join(", ")))?
        }
        Err(missing) => {
            return Err(format!(
                "SLURM is not installed (no {} found); install it with\n  {}\nor run `cargo xtask slurm-check --install`",
                missing.join(", "),
                slurm_check::install_command()
            ))
        }
    };
    let ntm = match ntm {
        Some(p) => std::fs::canonicalize(&p).map_err(|e| format!("{p}: {e}"))?,
        None => build_ntm()?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    let scratch = tempfile::Builder::new()
        .prefix("ntm-slurm-check-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    let dir = scratch.path().to_path_buf();
    let start = std::time::Instant::now();
    let say = |m: &str| println!("[{:5.1} s] {m}", start.elapsed().as_secs_f64());
    say(&format!(
        "starting munged, slurmctld and slurmd in {}",
        dir.display()
    ));
    let result = Cluster::start(&dir.join("cluster"), tools, &stop).and_then(|mut cluster| {
        let (node, cpus) = cluster.node();
        say(&format!(
            "cluster up: node {node} with {cpus} CPUs, config {}",
            cluster.conf().display()
        ));
        let opts = CheckOptions {
            ntm,
            tasks: root().join("tasks"),
            dir: dir.clone(),
            timeout: std::time::Duration::from_secs(timeout),
            sequences,
        };
        let result = slurm_check::run(&mut cluster, &opts, &say, &stop);
        let stopped = cluster.stop();
        if stopped.is_ok() {
            say("stopped slurmd, slurmctld and munged; no process of the cluster is left");
        }
        match (result, stopped) {
            (Ok(mut r), Err(e)) => {
                r.problems.push(e);
                Ok(r)
            }
            (r, Ok(())) => r,
            (Err(e), Err(e2)) => Err(format!("{e}\n{e2}")),
        }
    });
    let failed = match result {
        Ok(r) => {
            println!("\n{}", r.summary);
            for p in &r.problems {
                eprintln!("problem: {p}");
            }
            (!r.problems.is_empty()).then(|| format!("{} problems", r.problems.len()))
        }
        Err(e) => Some(e),
    };
    let total = start.elapsed().as_secs_f64();
    if failed.is_some() || keep {
        let kept = scratch.keep();
        println!(
            "the cluster's folder, logs and runs are kept in {}",
            kept.display()
        );
    }
    match failed {
        Some(e) => Err(format!("slurm-check failed after {total:.0} s: {e}")),
        None => {
            println!("slurm-check passed in {total:.0} s");
            Ok(())
        }
    }
}

#[cfg(not(unix))]
fn slurm_check_cmd(_: Args) -> Result<(), String> {
    Err("slurm-check runs a SLURM cluster on this machine, which needs Linux".into())
}

fn cuda_setup_cmd(mut args: Args) -> Result<(), String> {
    use xtask::cuda::{self, Setup, Toolkit};
    let dir = match args.value("--target")? {
        Some(d) => std::path::absolute(&d).map_err(|e| format!("--target {d}: {e}"))?,
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root().join("target"), PathBuf::from)
            .join("cuda-toolkit"),
    };
    let cap = args
        .value("--compute-cap")?
        .unwrap_or_else(|| cuda::DEFAULT_COMPUTE_CAP.into());
    cuda::check_compute_cap(&cap)?;
    let python = args.value("--python")?;
    args.finish()?;
    let toolkit = Toolkit::new(&dir);
    // Progress goes to stderr: stdout holds only the `export` lines, for `eval`.
    let setup = if toolkit.is_current() && toolkit.verify().is_ok() {
        Setup::AlreadyInstalled
    } else {
        let python = cuda::find_python(python.as_deref())?;
        eprintln!(
            "installing CUDA {} (nvcc and headers: a 120 MB download, 340 MB installed) into {}",
            cuda::CUDA_RELEASE,
            dir.display()
        );
        cuda::install(&toolkit, &python)?
    };
    eprintln!(
        "CUDA {} {} in {}",
        cuda::CUDA_RELEASE,
        match setup {
            Setup::AlreadyInstalled => "already installed",
            Setup::Installed => "installed",
        },
        dir.display()
    );
    print!("{}", toolkit.exports(&cap));
    Ok(())
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() || argv.iter().any(|a| a == "-h" || a == "--help") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let command = argv.remove(0);
    let result = match command.as_str() {
        "train-all" => train_all(Args(argv)),
        "report" => report_cmd(Args(argv)),
        "faults" => faults_cmd(Args(argv)),
        "slurm-check" => slurm_check_cmd(Args(argv)),
        "cuda-setup" => cuda_setup_cmd(Args(argv)),
        other => Err(format!("unknown command `{other}`\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
