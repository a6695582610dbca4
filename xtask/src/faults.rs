//! `cargo xtask faults`: bad input, faults and concurrency thrown at a built `ntm` binary.
//!
//! Every case runs in a sandbox directory that holds a small trained run and broken copies of
//! it. A case passes when the binary fails cleanly: a non-zero exit, no panic, no abort, one
//! line on stderr that starts with `error:` and says what is wrong (command-line usage errors
//! keep the argument parser's own short form), and every file that existed before is unchanged
//! afterwards. The fault cases (signals, a full disk, two writers, kills) check what the run
//! directory holds afterwards.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest a case may run before it counts as a hang.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Settings of a tiny run: a few seconds of training at most.
pub const TINY: [&str; 9] = [
    "model.controller.size=8",
    "model.memory.rows=16",
    "model.memory.width=4",
    "train.batch_size=2",
    "train.val_sequences=4",
    "train.val_batch=4",
    "train.eval_every=4",
    "train.log_every=2",
    "task.max_length=4",
];

/// What one case did.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// What the case tries.
    pub name: String,
    /// Exit code, or `signal N`.
    pub exit: String,
    /// Whether it behaved.
    pub ok: bool,
    /// Why not, or the first line of its error.
    pub detail: String,
}

/// The expected failure of a plain case.
#[derive(Clone, Copy)]
enum Expect {
    /// One `error:` line that contains this text.
    Error(&'static str),
    /// The argument parser's usage error (exit code 2).
    Usage,
}

/// Runs the corpus with the binary `ntm` in a fresh sandbox under `scratch`; `kills` random
/// kill -9 rounds are added (30 in the acceptance run).
pub fn run_corpus(ntm: &Path, scratch: &Path, kills: usize) -> Result<Vec<CaseResult>, String> {
    let sandbox = scratch.join("sandbox");
    std::fs::create_dir_all(&sandbox).map_err(|e| format!("{}: {e}", sandbox.display()))?;
    let s = Sandbox {
        ntm: ntm.to_path_buf(),
        dir: sandbox,
    };
    s.prepare()?;
    let mut results = Vec::new();
    for (name, args, expect) in plain_cases() {
        results.push(s.plain(&name, &args, expect));
    }
    results.extend(s.fault_cases());
    for round in 0..kills {
        results.push(s.kill_round(round));
    }
    Ok(results)
}

/// The corpus as a Markdown table with a closing count.
pub fn table(results: &[CaseResult]) -> String {
    let mut out = String::from("| # | case | exit | result |\n|---|---|---|---|\n");
    for (i, r) in results.iter().enumerate() {
        let verdict = if r.ok { "ok" } else { "FAILED" };
        out.push_str(&format!(
            "| {} | {} | {} | {verdict}: {} |\n",
            i + 1,
            r.name.replace('|', "\\|"),
            r.exit,
            r.detail.replace('|', "\\|")
        ));
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    out.push_str(&format!(
        "\n{} cases, {} passed, {failed} failed\n",
        results.len(),
        results.len() - failed
    ));
    out
}

fn tiny_sets() -> Vec<String> {
    TINY.iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn train_into(out: &str, extra: &[&str]) -> Vec<String> {
    let mut a = args(&["train", "--task", "copy", "--model", "ff-ntm", "--out", out]);
    a.extend(tiny_sets());
    a.extend(args(extra));
    a
}

fn set(kv: &str) -> Vec<String> {
    let mut a = train_into("new", &[]);
    a.extend(["--set".to_string(), kv.to_string()]);
    a
}

/// Cases that are one command each: bad configuration, bad paths, bad numbers.
fn plain_cases() -> Vec<(String, Vec<String>, Expect)> {
    use Expect::{Error, Usage};
    let mut c: Vec<(String, Vec<String>, Expect)> = Vec::new();
    let mut add = |name: &str, a: Vec<String>, e: Expect| c.push((name.to_string(), a, e));

    // Configuration values.
    add(
        "unknown task",
        args(&["train", "--task", "sorting", "--out", "new"]),
        Error("sorting"),
    );
    add(
        "unknown model",
        args(&[
            "train", "--task", "copy", "--model", "rnn-ntm", "--out", "new",
        ]),
        Error("rnn"),
    );
    add(
        "misspelt key",
        set("train.batch_sise=3"),
        Error("batch_sise"),
    );
    add(
        "batch size 0",
        set("train.batch_size=0"),
        Error("batch_size"),
    );
    add(
        "negative batch size",
        set("train.batch_size=-1"),
        Error("batch_size"),
    );
    add(
        "batch size not a number",
        set("train.batch_size=abc"),
        Error("batch_size"),
    );
    add(
        "negative learning rate",
        set("train.optimizer.lr=-1"),
        Error("optimizer"),
    );
    add(
        "learning rate beyond f32",
        set("train.optimizer.lr=1e39"),
        Error("learning rate"),
    );
    add(
        "learning rate NaN",
        set("train.optimizer.lr=nan"),
        Error("optimizer"),
    );
    add(
        "unknown optimiser",
        set("train.optimizer.kind=sgd"),
        Error("sgd"),
    );
    add(
        "zero memory rows",
        set("model.memory.rows=0"),
        Error("rows"),
    );
    add(
        "memory rows as a float",
        set("model.memory.rows=1e9"),
        Error("rows"),
    );
    add(
        "a billion memory rows",
        set("model.memory.rows=1000000000"),
        Error("needs about"),
    );
    add(
        "memory rows 2^63-1",
        set("model.memory.rows=9223372036854775807"),
        Error("needs about"),
    );
    add(
        "memory width 2^62",
        set("model.memory.width=4611686018427387904"),
        Error("needs about"),
    );
    add(
        "batch of 10^12",
        set("train.batch_size=1000000000000"),
        Error("needs about"),
    );
    add(
        "controller of 10^6 units",
        set("model.controller.size=1000000"),
        Error("needs about"),
    );
    add(
        "validation set of 10^12",
        set("train.val_sequences=1000000000000"),
        Error("needs about"),
    );
    add(
        "zero controller layers",
        set("model.controller.layers=0"),
        Error("layers"),
    );
    add(
        "zero task length",
        set("task.max_length=0"),
        Error("length"),
    );
    add(
        "min length above max",
        {
            let mut a = set("task.min_length=9");
            a.extend(args(&["--set", "task.max_length=5"]));
            a
        },
        Error("length"),
    );
    add(
        "negative time budget",
        set("train.max_seconds=-1"),
        Error("max_seconds"),
    );
    add(
        "negative clip",
        set("train.clip_value=-1"),
        Error("clip_value"),
    );
    add(
        "eval every 0",
        set("train.eval_every=0"),
        Error("eval_every"),
    );
    add(
        "target cost NaN",
        set("train.target_cost=nan"),
        Error("target_cost"),
    );
    add(
        "--set without =",
        set("train.batch_size"),
        Error("key=value"),
    );
    add("--set with an empty key", set("=3"), Error("key"));
    add(
        "missing config file",
        args(&[
            "train",
            "--task",
            "copy",
            "--config",
            "none.toml",
            "--out",
            "new",
        ]),
        Error("none.toml"),
    );
    add(
        "config that is not TOML",
        args(&[
            "train", "--task", "copy", "--config", "bad.toml", "--out", "new",
        ]),
        Error("TOML"),
    );
    add(
        "config with an unknown key",
        args(&[
            "train",
            "--task",
            "copy",
            "--config",
            "unknown.toml",
            "--out",
            "new",
        ]),
        Error("colour"),
    );
    add(
        "negative seed",
        args(&["train", "--task", "copy", "--seed", "-1"]),
        Usage,
    );
    add(
        "unknown flag",
        args(&["train", "--task", "copy", "--bogus"]),
        Usage,
    );

    // Where a run goes.
    add(
        "resume without --out",
        args(&["train", "--resume"]),
        Error("--out"),
    );
    add(
        "resume a missing run",
        args(&["train", "--resume", "--out", "missing"]),
        Error("no checkpoint"),
    );
    add(
        "resume with another config file",
        args(&[
            "train",
            "--resume",
            "--out",
            "run",
            "--config",
            "unknown.toml",
        ]),
        Error("--config"),
    );
    add(
        "resume with another learning rate",
        args(&[
            "train",
            "--resume",
            "--out",
            "run",
            "--set",
            "train.optimizer.lr=0.01",
        ]),
        Error("train.optimizer.lr"),
    );
    add(
        "resume with another seed",
        args(&["train", "--resume", "--out", "run", "--seed", "5"]),
        Error("seed"),
    );
    add(
        "resume with another task length",
        args(&[
            "train",
            "--resume",
            "--out",
            "run",
            "--set",
            "task.max_length=3",
        ]),
        Error("task.max_length"),
    );
    add(
        "resume as another model",
        args(&["train", "--resume", "--out", "run", "--model", "lstm-ntm"]),
        Error("model"),
    );
    add(
        "resume with garbage in the metrics",
        args(&[
            "train",
            "--resume",
            "--out",
            "bad-metrics",
            "--set",
            "train.max_sequences=40",
        ]),
        Error("line 2"),
    );
    add(
        "train over an existing run",
        train_into("run", &[]),
        Error("--resume"),
    );
    add(
        "train into a directory of other files",
        train_into("foreign", &[]),
        Error("not a file of a run"),
    );
    add(
        "train into a directory with another config.toml",
        train_into("other-config", &[]),
        Error("config.toml"),
    );
    add(
        "train into the current directory",
        train_into(".", &[]),
        Error("not a file of a run"),
    );
    add(
        "train into a path that is a file",
        train_into("file.txt", &[]),
        Error("file.txt"),
    );

    // Devices and limits.
    add(
        "device cuda:x",
        args(&["train", "--task", "copy", "--device", "cuda:x"]),
        Error("cuda:x"),
    );
    add(
        "device cuda in a build without CUDA, or on a machine without a GPU",
        args(&["train", "--task", "copy", "--device", "cuda"]),
        Error("cuda"),
    );
    add("bf16 on the CPU", set("model.dtype=bf16"), Error("bf16"));
    add(
        "device tpu",
        args(&["train", "--task", "copy", "--device", "tpu"]),
        Error("tpu"),
    );
    add(
        "negative memory limit",
        args(&["train", "--task", "copy", "--memory-limit=-1"]),
        Error("memory-limit"),
    );
    add(
        "a memory limit of 1 KiB",
        {
            let mut a = train_into("new", &[]);
            a.extend(args(&["--memory-limit", "0.000001"]));
            a
        },
        Error("needs about"),
    );

    // Evaluation.
    add(
        "eval a missing run",
        args(&["eval", "--run", "missing"]),
        Error("missing"),
    );
    add(
        "eval a directory that is no run",
        args(&["eval", "--run", "foreign"]),
        Error("foreign"),
    );
    add(
        "eval on 0 sequences",
        args(&["eval", "--run", "run", "--sequences", "0"]),
        Error("--sequences"),
    );
    add(
        "eval at length 10^7",
        args(&["eval", "--run", "run", "--lengths", "10000000"]),
        Error("needs about"),
    );
    add(
        "eval at length 10^15",
        args(&["eval", "--run", "run", "--lengths", "1000000000000000"]),
        Error("needs about"),
    );
    add(
        "eval at length 1e15",
        args(&["eval", "--run", "run", "--lengths", "1e15"]),
        Usage,
    );
    add(
        "eval at length 0",
        args(&["eval", "--run", "run", "--lengths", "0"]),
        Error("copy"),
    );
    add(
        "eval copy with repeats",
        args(&["eval", "--run", "run", "--lengths", "3x4"]),
        Error("copy"),
    );
    add(
        "eval a truncated checkpoint",
        args(&["eval", "--run", "cut", "--sequences", "2"]),
        Error("checkpoint"),
    );
    add(
        "eval a checkpoint with NaN weights",
        args(&["eval", "--run", "nan", "--sequences", "2"]),
        Error("non-finite"),
    );
    add(
        "eval with an edited config.toml",
        args(&["eval", "--run", "edited", "--sequences", "2"]),
        Error("model.memory.init"),
    );
    add(
        "eval with a config.toml that is not TOML",
        args(&["eval", "--run", "garbage-config", "--sequences", "2"]),
        Error("config.toml"),
    );

    // Figures.
    add(
        "show at length 10^5",
        args(&[
            "show", "--run", "run", "--length", "100000", "--out", "fig.png",
        ]),
        Error("steps"),
    );
    add(
        "show into a missing folder",
        args(&[
            "show",
            "--run",
            "run",
            "--length",
            "3",
            "--out",
            "no/such/dir/fig.png",
        ]),
        Error("no/such/dir/fig.png"),
    );
    add(
        "show at length 0",
        args(&["show", "--run", "run", "--length", "0", "--out", "fig.png"]),
        Error("copy"),
    );
    add(
        "show a missing run",
        args(&["show", "--run", "missing", "--out", "fig.png"]),
        Error("missing"),
    );
    add(
        "show a checkpoint with NaN weights",
        args(&["show", "--run", "nan", "--out", "fig.png"]),
        Error("non-finite"),
    );

    // Benchmarks.
    add(
        "bench for 0 seconds",
        args(&["bench", "--seconds", "0"]),
        Error("--seconds"),
    );
    add(
        "bench for NaN seconds",
        args(&["bench", "--seconds", "nan"]),
        Error("--seconds"),
    );
    add(
        "bench for -1 seconds",
        args(&["bench", "--seconds=-1"]),
        Error("--seconds"),
    );
    add(
        "bench at batch 0",
        args(&["bench", "--batch", "0"]),
        Error("batch_size"),
    );
    add(
        "bench at batch 10^12",
        args(&["bench", "--batch", "1000000000000"]),
        Error("needs about"),
    );
    add(
        "bench an unknown task",
        args(&["bench", "--task", "nope"]),
        Error("nope"),
    );
    add(
        "bench an unknown model",
        args(&["bench", "--model", "nope"]),
        Error("nope"),
    );
    c
}

struct Sandbox {
    ntm: PathBuf,
    dir: PathBuf,
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name != ".lock" {
            std::fs::copy(entry.path(), to.join(&name))
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Overwrites the first value of the first `model.` tensor of a safetensors file with NaN,
/// as a bit flip on disk would (the trainer itself never writes one).
fn poison(path: &Path) -> Result<(), String> {
    let mut bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let first = model_tensors(&bytes)
        .and_then(|t| t.into_iter().next())
        .ok_or("no model tensor")?;
    bytes[first.start..first.start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    write(path, bytes)
}

/// The byte ranges of a safetensors file's `model.` tensors, in name order.
fn model_tensors(bytes: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..8 + len)?).ok()?;
    let mut names: Vec<&String> = header
        .as_object()?
        .keys()
        .filter(|k| k.starts_with("model."))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let o = &header[n.as_str()]["data_offsets"];
            let (a, b) = (o[0].as_u64()? as usize, o[1].as_u64()? as usize);
            (8 + len + b <= bytes.len()).then_some(8 + len + a..8 + len + b)
        })
        .collect()
}

/// A snapshot of every file under a directory (but lock files, which every writer rewrites):
/// path to a hash of its content.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry.file_name() != ".lock" {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&path).unwrap_or_default().hash(&mut h);
                out.insert(path, h.finish());
            }
        }
    }
    out
}

/// The files of `before` that are gone or changed.
fn changed(before: &BTreeMap<PathBuf, u64>, dir: &Path) -> Vec<String> {
    let after = snapshot(dir);
    before
        .iter()
        .filter(|(p, h)| after.get(*p) != Some(h))
        .map(|(p, _)| p.strip_prefix(dir).unwrap_or(p).display().to_string())
        .collect()
}

fn exit_of(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("signal {sig}");
        }
    }
    status.code().map_or("?".into(), |c| c.to_string())
}

fn wait_with_timeout(mut child: Child, limit: Duration) -> Option<Output> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().ok(),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Judges a failure: not success, no panic or abort, and the expected stderr.
fn judge(name: &str, out: &Output, expect: Expect) -> CaseResult {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // The banner and validation lines a run prints before it fails are not part of the error.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("training ") && !l.starts_with("step "))
        .collect();
    let first = lines.first().copied().unwrap_or("").to_string();
    let problem = if out.status.success() {
        Some("succeeded".to_string())
    } else if stderr.contains("panicked") || exit_of(out.status).starts_with("signal") {
        Some(format!("crashed: {first}"))
    } else {
        match expect {
            Expect::Error(needle) => {
                if lines.len() != 1 {
                    Some(format!("{} lines on stderr: {stderr}", lines.len()))
                } else if !first.starts_with("error:") || !first.contains(needle) {
                    Some(format!("`{needle}` not in: {first}"))
                } else {
                    None
                }
            }
            Expect::Usage => (out.status.code() != Some(2) || !first.starts_with("error:"))
                .then(|| format!("not a usage error: {first}")),
        }
    };
    CaseResult {
        name: name.to_string(),
        exit: exit_of(out.status),
        ok: problem.is_none(),
        detail: problem.unwrap_or(first),
    }
}

fn failure(name: &str, detail: impl Into<String>) -> CaseResult {
    CaseResult {
        name: name.into(),
        exit: "-".into(),
        ok: false,
        detail: detail.into(),
    }
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// A reproducible sequence of numbers in [0, 1) for the kill moments (SplitMix64; written out
/// here so that the corpus needs no random-number crate).
fn unit(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

impl Sandbox {
    fn command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.ntm);
        cmd.args(args)
            .current_dir(&self.dir)
            .env("RAYON_NUM_THREADS", "1");
        cmd
    }

    fn output(&self, args: &[String]) -> Option<Output> {
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        wait_with_timeout(child, CASE_TIMEOUT)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The trained run and its broken copies.
    fn prepare(&self) -> Result<(), String> {
        let out = self
            .output(&train_into("run", &["--set", "train.max_sequences=8"]))
            .ok_or("the tiny run did not finish")?;
        if !out.status.success() {
            return Err(format!(
                "the tiny run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        for copy in ["cut", "nan", "edited", "garbage-config", "bad-metrics"] {
            copy_dir(&self.path("run"), &self.path(copy))?;
        }
        let ckpt = "checkpoint.safetensors";
        let bytes = std::fs::read(self.path("run").join(ckpt)).map_err(|e| e.to_string())?;
        write(&self.path("cut").join(ckpt), &bytes[..bytes.len() / 2])?;
        poison(&self.path("nan").join(ckpt))?;
        let config = std::fs::read_to_string(self.path("run").join("config.toml"))
            .map_err(|e| e.to_string())?;
        write(
            &self.path("edited").join("config.toml"),
            config.replace("init = \"constant\"", "init = \"random\""),
        )?;
        write(
            &self.path("garbage-config").join("config.toml"),
            "[[[ not toml",
        )?;
        let metrics = std::fs::read_to_string(self.path("run").join("metrics.jsonl"))
            .map_err(|e| e.to_string())?;
        write(
            &self.path("bad-metrics").join("metrics.jsonl"),
            metrics.replacen('\n', "\nnot json\n", 1),
        )?;
        std::fs::create_dir_all(self.path("foreign")).map_err(|e| e.to_string())?;
        write(&self.path("foreign").join("metrics.jsonl"), "my numbers\n")?;
        write(&self.path("foreign").join("notes.md"), "keep me\n")?;
        std::fs::create_dir_all(self.path("other-config")).map_err(|e| e.to_string())?;
        write(
            &self.path("other-config").join("config.toml"),
            "[server]\nport = 80\n",
        )?;
        write(&self.path("bad.toml"), "[train\nbatch_size = 3")?;
        write(&self.path("unknown.toml"), "[train]\ncolour = \"red\"\n")?;
        write(&self.path("file.txt"), "a file, not a directory\n")
    }

    fn plain(&self, name: &str, args: &[String], expect: Expect) -> CaseResult {
        let before = snapshot(&self.dir);
        let Some(out) = self.output(args) else {
            return failure(name, "did not finish in time");
        };
        let mut result = judge(name, &out, expect);
        let lost = changed(&before, &self.dir);
        if result.ok && !lost.is_empty() {
            result.ok = false;
            result.detail = format!("changed or removed: {}", lost.join(", "));
        }
        // A failed command may leave a new, empty run directory; clear it for the next case.
        let _ = std::fs::remove_dir_all(self.path("new"));
        result
    }

    fn fault_cases(&self) -> Vec<CaseResult> {
        let mut out = vec![
            self.overflowing_learning_rate(),
            self.nan_after_checkpoints(),
            self.two_writers(),
            self.resume_while_training(),
        ];
        #[cfg(unix)]
        {
            out.push(self.full_disk());
            out.push(self.signal("SIGINT stops with a checkpoint", "INT", 130));
            out.push(self.signal("SIGTERM stops with a checkpoint", "TERM", 143));
            out.push(self.double_signal());
        }
        out
    }

    fn overflowing_learning_rate(&self) -> CaseResult {
        let name = "lr 1e38: stops at step 1, writes no checkpoint and says so";
        let _ = std::fs::remove_dir_all(self.path("lr"));
        let Some(out) = self.output(&train_into("lr", &["--set", "train.optimizer.lr=1e38"]))
        else {
            return failure(name, "did not finish in time");
        };
        let mut r = judge(name, &out, Expect::Error("no checkpoint was written"));
        if r.ok && self.path("lr").join("checkpoint.safetensors").exists() {
            r.ok = false;
            r.detail = "a checkpoint was written".into();
        }
        r
    }

    fn nan_after_checkpoints(&self) -> CaseResult {
        let name = "lr 1e30 after checkpoints: the message names the checkpoint kept";
        let _ = std::fs::remove_dir_all(self.path("lr30"));
        let a = train_into(
            "lr30",
            &[
                "--set",
                "train.optimizer.lr=1e30",
                "--set",
                "train.checkpoint_every=1",
                "--set",
                "train.max_sequences=400",
            ],
        );
        let Some(out) = self.output(&a) else {
            return failure(name, "did not finish in time");
        };
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let ckpt = self.path("lr30").join("checkpoint.safetensors");
        // Either nothing was written and it says so, or the kept checkpoint loads.
        let truthful = if stderr.contains("no checkpoint was written") {
            !ckpt.exists()
        } else {
            stderr.contains("is kept")
                && self
                    .output(&args(&["eval", "--run", "lr30", "--sequences", "2"]))
                    .is_some_and(|o| o.status.success())
        };
        let mut r = judge(name, &out, Expect::Error("non-finite"));
        if r.ok && !truthful {
            r.ok = false;
            r.detail = format!("the message does not match the disk: {stderr}");
        }
        r
    }

    fn spawn_quiet(&self, args: &[String]) -> Option<Child> {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()
    }

    fn two_writers(&self) -> CaseResult {
        let name = "two runs into one directory 0.1 s apart: one trains, one is refused";
        let _ = std::fs::remove_dir_all(self.path("race"));
        let long = |seed: &str| {
            train_into(
                "race",
                &["--seed", seed, "--set", "train.max_sequences=2000"],
            )
        };
        let (Some(a), Some(b)) = (self.spawn_quiet(&long("1")), {
            std::thread::sleep(Duration::from_millis(100));
            self.spawn_quiet(&long("2"))
        }) else {
            return failure(name, "cannot start ntm");
        };
        let (Some(a), Some(b)) = (
            wait_with_timeout(a, CASE_TIMEOUT),
            wait_with_timeout(b, CASE_TIMEOUT),
        ) else {
            return failure(name, "did not finish in time");
        };
        let (winner, loser) = match (a.status.success(), b.status.success()) {
            (true, false) => (1, b),
            (false, true) => (2, a),
            _ => {
                return failure(
                    name,
                    format!("exits {} and {}", exit_of(a.status), exit_of(b.status)),
                )
            }
        };
        let mut r = judge(name, &loser, Expect::Error("in use by process"));
        let summary =
            std::fs::read_to_string(self.path("race").join("summary.json")).unwrap_or_default();
        let config =
            std::fs::read_to_string(self.path("race").join("config.toml")).unwrap_or_default();
        if r.ok
            && !(summary.contains(&format!("\"seed\": {winner}"))
                && config.contains(&format!("seed = {winner}")))
        {
            r.ok = false;
            r.detail = "the directory mixes the two runs".into();
        }
        r
    }

    fn resume_while_training(&self) -> CaseResult {
        let name = "--resume while the run is still training: refused, metrics intact";
        let _ = std::fs::remove_dir_all(self.path("busy"));
        let Some(first) = self.spawn_quiet(&train_into(
            "busy",
            &[
                "--set",
                "train.max_sequences=1000",
                "--set",
                "train.checkpoint_every=2",
            ],
        )) else {
            return failure(name, "cannot start ntm");
        };
        // Wait for a checkpoint, so that a resume has something to resume.
        let ckpt = self.path("busy").join("checkpoint.safetensors");
        let start = Instant::now();
        while !ckpt.exists() && start.elapsed() < CASE_TIMEOUT {
            std::thread::sleep(Duration::from_millis(10));
        }
        let second = self.output(&args(&[
            "train",
            "--resume",
            "--out",
            "busy",
            "--set",
            "train.max_sequences=2000",
        ]));
        let Some(first) = wait_with_timeout(first, CASE_TIMEOUT) else {
            return failure(name, "the first run did not finish in time");
        };
        let Some(second) = second else {
            return failure(name, "the resume did not finish in time");
        };
        let mut r = judge(name, &second, Expect::Error("in use by process"));
        let lines = std::fs::read_to_string(self.path("busy").join("metrics.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("bits_per_seq"))
            .count();
        // 500 updates logged every 2: 250 records, all of the first run's.
        if r.ok && (!first.status.success() || lines != 250) {
            r.ok = false;
            r.detail = format!("first run {}; {lines} metrics lines", exit_of(first.status));
        }
        r
    }

    #[cfg(unix)]
    fn shell(&self, script: &str) -> Option<Output> {
        let child = Command::new("bash")
            .args(["-c", script])
            .current_dir(&self.dir)
            .env("NTM", &self.ntm)
            .env("RAYON_NUM_THREADS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        wait_with_timeout(child, CASE_TIMEOUT)
    }

    /// A file-size limit makes every write past 1 KiB fail, as a full disk does.
    #[cfg(unix)]
    fn full_disk(&self) -> CaseResult {
        let name = "a full disk during a checkpoint: clean error, no temporary file left";
        let _ = std::fs::remove_dir_all(self.path("full"));
        let train = train_into(
            "full",
            &[
                "--set",
                "train.max_sequences=8",
                "--set",
                "train.checkpoint_every=2",
            ],
        )
        .join(" ");
        // 8 KiB: the config and the first metrics lines fit, a checkpoint does not.
        let Some(out) = self.shell(&format!("trap '' XFSZ; ulimit -f 8; exec \"$NTM\" {train}"))
        else {
            return failure(name, "did not finish in time");
        };
        let mut r = judge(name, &out, Expect::Error("checkpoint.safetensors"));
        let left = temporaries(&self.path("full"));
        if r.ok && !left.is_empty() {
            r.ok = false;
            r.detail = format!("left behind: {}", left.join(", "));
        }
        r
    }

    /// Weights of a run's checkpoint, as raw bytes per tensor.
    fn weights(&self, run: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.path(run).join("checkpoint.safetensors")).ok()?;
        Some(
            model_tensors(&bytes)?
                .into_iter()
                .flat_map(|r| bytes[r].to_vec())
                .collect(),
        )
    }

    /// Signals a run once after its first checkpoint; it must stop with a checkpoint and exit
    /// `code`, and resuming must reach the weights of an uninterrupted run.
    #[cfg(unix)]
    fn signal(&self, name: &str, signal: &str, code: i32) -> CaseResult {
        let dir = format!("sig-{signal}");
        let reference = "sig-reference";
        let budget = [
            "--set",
            "train.max_sequences=600",
            "--set",
            "train.checkpoint_every=50",
        ];
        let _ = std::fs::remove_dir_all(self.path(&dir));
        if !self.path(reference).exists() {
            let ok = self
                .output(&train_into(reference, &budget))
                .is_some_and(|o| o.status.success());
            if !ok {
                return failure(name, "the uninterrupted run failed");
            }
        }
        let train = train_into(&dir, &budget).join(" ");
        // Started in the background; signalled once its first metrics line is written.
        let script = format!(
            "\"$NTM\" {train} & pid=$!; for i in $(seq 2000); do [ -s {dir}/metrics.jsonl ] && break; sleep 0.01; done; kill -{signal} $pid; wait $pid; echo \"exit $?\" >&2"
        );
        let Some(out) = self.shell(&script) else {
            return failure(name, "did not finish in time");
        };
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !stderr.contains(&format!("exit {code}")) {
            return failure(name, format!("expected exit {code}: {stderr}"));
        }
        if stderr.contains("panicked") || !stderr.contains("--resume") {
            return failure(name, format!("no resume hint: {stderr}"));
        }
        if !self.path(&dir).join("checkpoint.safetensors").exists() {
            return failure(name, "no checkpoint");
        }
        let resumed = self.output(&args(&["train", "--resume", "--out", &dir]));
        if !resumed.is_some_and(|o| o.status.success()) {
            return failure(name, "the resume failed");
        }
        let same = self.weights(&dir).is_some() && self.weights(&dir) == self.weights(reference);
        CaseResult {
            name: name.into(),
            exit: code.to_string(),
            ok: same,
            detail: if same {
                "resumed to the uninterrupted run's weights, bit for bit".into()
            } else {
                "the resumed weights differ from the uninterrupted run's".into()
            },
        }
    }

    /// A second signal ends the run at once; the last checkpoint stays loadable.
    #[cfg(unix)]
    fn double_signal(&self) -> CaseResult {
        let name = "a second SIGINT exits at once, the checkpoint intact";
        let dir = "sig-twice";
        let _ = std::fs::remove_dir_all(self.path(dir));
        let train = train_into(
            dir,
            &[
                "--set",
                "train.max_sequences=100000",
                "--set",
                "train.checkpoint_every=5",
            ],
        )
        .join(" ");
        let script = format!(
            "\"$NTM\" {train} & pid=$!; for i in $(seq 2000); do [ -s {dir}/checkpoint.safetensors ] && break; sleep 0.01; done; kill -INT $pid; kill -INT $pid; wait $pid; echo \"exit $?\" >&2"
        );
        let Some(out) = self.shell(&script) else {
            return failure(name, "did not finish in time");
        };
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !stderr.contains("exit 130") {
            return failure(name, format!("expected exit 130: {stderr}"));
        }
        let loads = self
            .output(&args(&["eval", "--run", dir, "--sequences", "2"]))
            .is_some_and(|o| o.status.success());
        CaseResult {
            name: name.into(),
            exit: "130".into(),
            ok: loads,
            detail: if loads {
                "checkpoint loads".into()
            } else {
                "checkpoint unreadable".into()
            },
        }
    }

    /// Kills a training run with SIGKILL at a random moment (checkpoints are written every
    /// update, so many kills land in one); the checkpoint must load, the next start must clear
    /// any temporary file, and `--resume` must go on.
    fn kill_round(&self, round: usize) -> CaseResult {
        let name = format!("kill -9 #{}", round + 1);
        let dir = format!("kill{round}");
        let _ = std::fs::remove_dir_all(self.path(&dir));
        let train = train_into(
            &dir,
            &[
                "--set",
                "train.max_sequences=100000",
                "--set",
                "train.checkpoint_every=1",
            ],
        );
        let Some(mut child) = self.spawn_quiet(&train) else {
            return failure(&name, "cannot start ntm");
        };
        let wait = 0.05 + 1.5 * unit(round as u64);
        std::thread::sleep(Duration::from_secs_f64(wait));
        let _ = child.kill();
        let _ = child.wait();
        let has_checkpoint = self.path(&dir).join("checkpoint.safetensors").exists();
        let torn = !temporaries(&self.path(&dir)).is_empty();
        let next = if has_checkpoint {
            if !self
                .output(&args(&["eval", "--run", &dir, "--sequences", "2"]))
                .is_some_and(|o| o.status.success())
            {
                return failure(&name, "the checkpoint does not load");
            }
            args(&[
                "train",
                "--resume",
                "--out",
                &dir,
                "--set",
                "train.max_sequences=100",
                "--set",
                "train.checkpoint_every=1000",
            ])
        } else {
            train_into(&dir, &["--set", "train.max_sequences=8"])
        };
        let Some(out) = self.output(&next) else {
            return failure(&name, "the next start did not finish in time");
        };
        let left = temporaries(&self.path(&dir));
        let ok = out.status.success() && left.is_empty();
        CaseResult {
            name: format!("{name} after {wait:.2} s"),
            exit: "signal 9".into(),
            ok,
            detail: if ok {
                format!(
                    "{}; {}",
                    if has_checkpoint {
                        "checkpoint loads and resumes"
                    } else {
                        "killed before the first checkpoint; a fresh start works"
                    },
                    if torn {
                        "the kill left a temporary file and the next start removed it"
                    } else {
                        "no temporary files"
                    }
                )
            } else {
                format!(
                    "next start {}; left behind: {}",
                    exit_of(out.status),
                    left.join(", ")
                )
            },
        }
    }
}
