//! A SLURM job array with one index per run, instead of running anything locally.
//!
//! `cargo xtask slurm-check` ([`crate::slurm_check`]) runs a tiny sweep's script through a
//! one-node SLURM cluster, requeueing one task mid-run.

use std::collections::BTreeSet;
use std::path::Path;

use crate::experiment::{RunSpec, EVAL};
use crate::{Result, XtaskError};

fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn words(args: &[String]) -> String {
    args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// The shell functions every index calls. `run_ntm` runs the binary on the task's device with
/// its CPUs; `train DIR ARGS` skips a finished run, resumes one with a checkpoint and starts
/// the others.
const PRELUDE: &str = r#"set -euo pipefail
NTM="${NTM:-ntm}"
DEVICE="${NTM_DEVICE:-cpu}"
THREADS="${SLURM_CPUS_PER_TASK:-1}"
if ! command -v "$NTM" > /dev/null; then
    echo "no ntm binary \`$NTM\`: put it on the PATH or set NTM=/path/to/ntm" >&2
    exit 2
fi
# SLURM sends SIGTERM to every process of a task it stops (requeue, preemption, time limit),
# then SIGKILL after the cluster's KillWait. With a trap the shell outlives ntm, which saves a
# checkpoint and exits 143; the script then exits with that status.
trap 'echo "SIGTERM: waiting for ntm to save its checkpoint" >&2' TERM
echo "array index ${SLURM_ARRAY_TASK_ID:-?} of job ${SLURM_ARRAY_JOB_ID:-?} on ${SLURMD_NODENAME:-$(uname -n)}, start $((${SLURM_RESTART_COUNT:-0} + 1))"
run_ntm() {
    "$NTM" --device "$DEVICE" --threads "$THREADS" "$@"
}
train() {
    local dir="$1"
    shift
    if [ -f "$dir/summary.json" ]; then
        echo "$dir: trained already"
    elif [ -f "$dir/checkpoint.safetensors" ]; then
        echo "$dir: resuming from its checkpoint"
        run_ntm train "$@" --resume
    else
        echo "$dir: training from the start"
        run_ntm train "$@"
    fi
}
"#;

/// Checks that every run has a directory of its own: two array tasks writing one directory
/// would fight over its lock, and one of them would fail.
pub fn check_distinct(runs: &[RunSpec]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for run in runs {
        if !seen.insert(&run.dir) {
            return Err(XtaskError::Experiment {
                file: run.task.clone(),
                message: format!(
                    "two runs of the sweep write {}; each (task, model, seed) may appear once",
                    run.dir.display()
                ),
            });
        }
    }
    Ok(())
}

/// A bash script for `sbatch`: array index `i` trains run `i` into its own directory under the
/// shared `out` folder, then writes its generalisation costs and figure. `$NTM` names the binary
/// (default `ntm`), `$NTM_DEVICE` the device (default `cpu`); each run gets
/// `$SLURM_CPUS_PER_TASK` threads.
///
/// A task that SLURM stops and starts again (`--requeue`: preemption, a node failure,
/// `scontrol requeue`) resumes from its checkpoint, and its log is appended to rather than
/// replaced. Fails when there are no runs or two runs share a directory.
pub fn script(runs: &[RunSpec], out: &Path) -> Result<String> {
    if runs.is_empty() {
        return Err(XtaskError::Experiment {
            file: "<sweep>".into(),
            message: "no runs to put in a job array".into(),
        });
    }
    check_distinct(runs)?;
    let out_q = quote(&out.display().to_string());
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str("# Neural Turing Machine sweep: one array index per (task, model, seed), each with its own run directory.\n");
    s.push_str(&format!("# mkdir -p {out_q} && sbatch THIS_FILE; afterwards `cargo xtask report --out {out_q}` builds the report.\n"));
    s.push_str("# $NTM names the ntm binary (default: ntm on the PATH), $NTM_DEVICE the device (default cpu).\n");
    s.push_str("# A stopped task resumes from its checkpoint when SLURM starts it again; submitting the script\n");
    s.push_str("# again skips finished runs and resumes the others.\n");
    s.push_str("#SBATCH --job-name=ntm-sweep\n");
    s.push_str(&format!("#SBATCH --array=0-{}\n", runs.len() - 1));
    s.push_str("#SBATCH --cpus-per-task=1\n");
    s.push_str("#SBATCH --requeue\n");
    s.push_str("#SBATCH --open-mode=append\n");
    s.push_str(&format!("#SBATCH --output={out_q}/slurm-%A_%a.log\n"));
    s.push_str(PRELUDE);
    s.push_str("case \"${SLURM_ARRAY_TASK_ID:-}\" in\n");
    for (i, run) in runs.iter().enumerate() {
        let dir = quote(&out.join(&run.dir).display().to_string());
        s.push_str(&format!(
            "  {i}) # {}/{}/seed{}\n",
            run.task, run.model, run.seed
        ));
        s.push_str(&format!(
            "    train {dir} {}\n",
            words(&run.train_args(out)[1..])
        ));
        s.push_str(&format!(
            "    run_ntm {} > {dir}/{EVAL}.tmp\n",
            words(&run.eval_args(out))
        ));
        s.push_str(&format!("    mv {dir}/{EVAL}.tmp {dir}/{EVAL}\n"));
        if let Some(show) = run.show_args(out) {
            s.push_str(&format!("    run_ntm {}\n", words(&show)));
        }
        s.push_str("    ;;\n");
    }
    s.push_str("  *) echo \"no run for array index ${SLURM_ARRAY_TASK_ID:-(none)}\" >&2; exit 1 ;;\nesac\n");
    s.push_str("echo \"array index $SLURM_ARRAY_TASK_ID: done\"\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Experiment, Sweep};
    use std::path::PathBuf;

    fn runs() -> Vec<RunSpec> {
        let text = r#"
task = "copy"
eval = ["10", "20"]
show = "20"
[models.lstm-ntm]
size = 100
layers = 1
heads = 1
lr = 1e-4
[models.lstm]
size = 256
layers = 3
lr = 3e-5
[profiles.quick]
seeds = 2
eval_sequences = 10
set = ["train.max_seconds=60", "task.name=it's"]
"#;
        Experiment::parse(text)
            .unwrap()
            .runs("quick", None)
            .unwrap()
    }

    /// The lines of the `case` branch of index `i`.
    fn branch(script: &str, i: usize) -> Vec<String> {
        let start = format!("  {i}) ");
        script
            .lines()
            .skip_while(|l| !l.starts_with(&start))
            .skip(1)
            .take_while(|l| l.trim() != ";;")
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn each_index_trains_its_own_directory_and_resumes_there() {
        let runs = runs();
        let out = Path::new("/shared/ntm out");
        let s = script(&runs, out).unwrap();
        assert!(s.contains("#SBATCH --array=0-3\n"), "{s}");
        let mut dirs = BTreeSet::new();
        for (i, run) in runs.iter().enumerate() {
            let lines = branch(&s, i);
            let dir = quote(&out.join(&run.dir).display().to_string());
            assert!(
                dir.starts_with('\''),
                "a path with a space is quoted: {dir}"
            );
            assert!(
                lines[0].starts_with(&format!(
                    "    train {dir} --task copy --model {}",
                    run.model
                )),
                "index {i}: {lines:?}"
            );
            assert!(lines[0].contains(&format!("--out {dir} ")), "{lines:?}");
            assert!(lines[0].contains(&format!("--seed {} ", run.seed)));
            assert!(lines[1].contains(&format!("--run {dir} ")));
            assert!(lines[1].ends_with(&format!("> {dir}/eval.json.tmp")));
            assert_eq!(
                lines[2],
                format!("    mv {dir}/eval.json.tmp {dir}/eval.json")
            );
            // The NTM draws a figure, the LSTM has no memory to show.
            assert_eq!(lines.len(), if run.model == "lstm" { 3 } else { 4 });
            assert!(dirs.insert(dir), "index {i} shares a directory");
        }
        assert_eq!(dirs.len(), 4);
        // A quote in a value is escaped for the shell.
        assert!(s.contains(r"--set 'task.name=it'\''s'"), "{s}");
    }

    #[test]
    fn a_requeued_task_keeps_its_log_and_resumes_from_its_checkpoint() {
        let s = script(&runs(), Path::new("/out")).unwrap();
        for line in [
            "#SBATCH --requeue",
            "#SBATCH --open-mode=append",
            "#SBATCH --output=/out/slurm-%A_%a.log",
            "    elif [ -f \"$dir/checkpoint.safetensors\" ]; then",
            "        run_ntm train \"$@\" --resume",
            "trap 'echo \"SIGTERM: waiting for ntm to save its checkpoint\" >&2' TERM",
        ] {
            assert!(s.lines().any(|l| l == line), "missing `{line}`:\n{s}");
        }
        // The checks come before the first command, and the binary gets the allocation's CPUs.
        assert!(s.find("set -euo pipefail").unwrap() < s.find("case ").unwrap());
        assert!(s.contains("--threads \"$THREADS\""));
    }

    #[test]
    fn runs_sharing_a_directory_or_no_runs_are_refused() {
        let mut runs = runs();
        runs[3].dir = PathBuf::from("runs/copy/lstm-ntm/seed0");
        let err = script(&runs, Path::new("/out")).unwrap_err().to_string();
        assert!(err.contains("runs/copy/lstm-ntm/seed0"), "{err}");
        assert!(script(&[], Path::new("/out")).is_err());
    }

    /// Runs index `i` of the script with a stand-in `ntm` that logs its arguments, in a folder
    /// where the run directory is set up by `prepare`; returns the logged command lines.
    #[cfg(unix)]
    fn run_index(i: usize, prepare: impl Fn(&Path)) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let runs = runs();
        prepare(&out.join(&runs[i].dir));
        let fake = tmp.path().join("fake-ntm");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"$*\" >> \"$CALLS\"\ncase \" $* \" in *\" eval \"*) echo '{\"10\": 1.5}' ;; esac\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = tmp.path().join("sweep.sh");
        std::fs::write(&file, script(&runs, &out).unwrap()).unwrap();
        let calls = tmp.path().join("calls");
        let status = std::process::Command::new("bash")
            .arg(&file)
            .env("NTM", &fake)
            .env("CALLS", &calls)
            .env("SLURM_ARRAY_TASK_ID", i.to_string())
            .env("SLURM_CPUS_PER_TASK", "3")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let eval = std::fs::read_to_string(out.join(&runs[i].dir).join(EVAL)).unwrap();
        assert_eq!(eval.trim(), "{\"10\": 1.5}");
        std::fs::read_to_string(calls)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[cfg(unix)]
    #[test]
    fn the_script_starts_resumes_or_skips_training_by_what_the_directory_holds() {
        let mkdir = |d: &Path| std::fs::create_dir_all(d).unwrap();
        let fresh = run_index(1, mkdir);
        assert_eq!(fresh.len(), 3, "{fresh:?}");
        assert!(fresh[0].starts_with("--device cpu --threads 3 train --task copy"));
        assert!(fresh[0].contains("--seed 1 "));
        assert!(!fresh[0].contains("--resume"), "{fresh:?}");
        assert!(fresh[1].starts_with("--device cpu --threads 3 eval "));
        assert!(fresh[2].contains(" show "));

        let resumed = run_index(1, |d| {
            mkdir(d);
            std::fs::write(d.join("checkpoint.safetensors"), "").unwrap();
        });
        assert!(resumed[0].ends_with(" --resume"), "{resumed:?}");

        let finished = run_index(1, |d| {
            mkdir(d);
            std::fs::write(d.join("checkpoint.safetensors"), "").unwrap();
            std::fs::write(d.join("summary.json"), "{}").unwrap();
        });
        assert!(
            finished.iter().all(|c| !c.contains(" train ")),
            "{finished:?}"
        );
        assert_eq!(finished.len(), 2);
    }
}
