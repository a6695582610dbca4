//! The experiment files, the SLURM script and the report, without training anything.

use std::path::Path;

use xtask::experiment::{task_order, MODEL_ORDER};
use xtask::{report, slurm, Experiment, Sweep};

fn experiments() -> Vec<Experiment> {
    Experiment::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../tasks")).unwrap()
}

#[test]
fn every_paper_task_has_a_file_with_the_papers_models_the_dnc_and_two_profiles() {
    let all = experiments();
    let tasks: Vec<&str> = all.iter().map(|e| e.task.as_str()).collect();
    assert_eq!(tasks, task_order());
    for e in &all {
        let mut models = MODEL_ORDER.to_vec();
        models.push("lstm-dnc");
        assert_eq!(e.model_kinds(), models, "{}", e.task);
        for profile in ["quick", "paper"] {
            let runs = e.runs(profile, None).unwrap();
            assert!(runs.len() >= 4, "{} {profile}", e.task);
        }
        assert!(e.runs("nonexistent", None).is_err());
        assert_eq!(
            e.models["lstm"].layers, 3,
            "{}: the baseline has three layers",
            e.task
        );
        assert!(e.models["lstm"].heads.is_none());
    }
}

#[test]
fn files_carry_the_papers_hyperparameters() {
    let all = experiments();
    let get = |task: &str, model: &str| {
        all.iter().find(|e| e.task == task).unwrap().models[model].clone()
    };
    // Graves et al. (2014), tables 1-3; the priority-sort FF NTM departs to Adam at 1e-3 (its
    // file gives the measured reason) and keeps the paper's sizes.
    let table = [
        ("copy", "ff-ntm", 100, 1, 1e-4),
        ("copy", "lstm", 256, 0, 3e-5),
        ("repeat-copy", "lstm", 512, 0, 3e-5),
        ("associative-recall", "ff-ntm", 256, 4, 1e-4),
        ("ngrams", "lstm-ntm", 100, 1, 3e-5),
        ("priority-sort", "ff-ntm", 512, 8, 1e-3),
        ("priority-sort", "lstm-ntm", 100, 5, 3e-5),
    ];
    for (task, model, size, heads, lr) in table {
        let m = get(task, model);
        assert_eq!(m.size, size, "{task} {model}");
        assert_eq!(m.heads.unwrap_or(0), heads, "{task} {model}");
        assert_eq!(m.lr, lr, "{task} {model}");
    }
    assert_eq!(get("priority-sort", "lstm-ntm").layers, 2);
}

#[test]
fn bad_experiment_files_are_errors() {
    let base = "task = \"copy\"\neval = [\"20\"]\nshow = \"20\"\n[models.lstm]\nsize = 8\nlayers = 1\nlr = 1e-3\n[profiles.quick]\nseeds = 1\neval_sequences = 10\n";
    assert!(Experiment::parse(base).is_ok());
    assert!(
        Experiment::parse_checked(&base.replace("copy", "sorting"), "sorting.toml")
            .unwrap_err()
            .to_string()
            .contains("sorting")
    );
    assert!(
        Experiment::parse(&base.replace("models.lstm", "models.\"LSTM NTM\""))
            .unwrap_err()
            .to_string()
            .contains("LSTM NTM")
    );
    // Any controller x memory the registry knows is a model, not just the paper's three.
    assert!(Experiment::parse(&base.replace("models.lstm", "models.gru-ntm")).is_ok());
    assert!(Experiment::parse(&format!("typo = 1\n{base}")).is_err());
    assert!(Experiment::parse(&base.replace("seeds = 1", "seeds = 0")).is_err());
}

#[test]
fn the_slurm_script_names_every_run() {
    let runs: Vec<_> = experiments()
        .iter()
        .flat_map(|e| e.runs("paper", None).unwrap())
        .collect();
    let out = Path::new("/shared/ntm-results");
    let script = slurm::script(&runs, out).unwrap();
    assert!(script.starts_with("#!/bin/bash"));
    assert!(script.contains(&format!("#SBATCH --array=0-{}", runs.len() - 1)));
    for (i, run) in runs.iter().enumerate() {
        let dir = out.join(&run.dir).display().to_string();
        assert!(
            script.contains(&format!(
                "  {i}) # {}/{}/seed{}",
                run.task, run.model, run.seed
            )),
            "index {i}"
        );
        assert!(script.contains(&format!("--out {dir}")), "{dir}");
        assert!(script.contains(&format!("--seed {}", run.seed)));
    }
    // Six tasks (the paper's five and memory reuse), four models, three seeds.
    assert_eq!(runs.len(), 6 * 4 * 3);
}

fn fake_run(out: &Path, task: &str, model: &str, seed: u64, cost: f64, converged: bool) {
    let dir = out
        .join("runs")
        .join(task)
        .join(model)
        .join(format!("seed{seed}"));
    std::fs::create_dir_all(&dir).unwrap();
    let summary = serde_json::json!({
        "task": task, "model": model, "params": 62736, "seed": seed, "steps": 3000, "sequences": 3000,
        "wall_seconds": 90.0, "val_bits_per_seq": cost, "val_loss": cost * 2.0, "val_optimal": null,
        "cost_kind": "bit-errors", "seq_per_s": 33.3, "converged": converged,
        "converged_at_sequences": if converged { Some(2000) } else { None }, "converged_at_seconds": if converged { Some(60.0) } else { None },
    });
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
    let metrics: String = (1..=3)
        .map(|i| format!("{{\"step\":{0},\"sequences\":{0},\"loss\":1.0,\"bits_per_seq\":1.0,\"seq_per_s\":1.0,\"wall_seconds\":1.0,\"val_bits_per_seq\":{1}}}\n", i * 1000, cost * (4 - i) as f64))
        .collect();
    std::fs::write(dir.join("metrics.jsonl"), metrics).unwrap();
    std::fs::write(
        dir.join("eval.json"),
        format!("{{\"5\": {cost}, \"40\": {}}}", cost * 3.0),
    )
    .unwrap();
}

#[test]
fn the_report_has_tables_curves_and_lists_unfinished_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    fake_run(out, "copy", "lstm-ntm", 0, 0.0, true);
    fake_run(out, "copy", "lstm-ntm", 1, 0.2, true);
    fake_run(out, "copy", "lstm", 0, 12.5, false);
    std::fs::create_dir_all(out.join("runs/copy/ff-ntm/seed0")).unwrap(); // no summary: unfinished
    let path = report::write_report(out).unwrap();
    let md = std::fs::read_to_string(path).unwrap();
    assert!(
        md.contains("| copy | - | 0.10 (converged 2/2) | 12.50 |"),
        "{md}"
    );
    assert!(
        md.contains("| lstm-ntm | 62,736 (67,561) | 2 | 2/2 | 2,000 | 60 s |"),
        "{md}"
    );
    assert!(
        md.contains("at 5 | at 40 |"),
        "sizes in numeric order: {md}"
    );
    // Medians with the range over seeds, and the paper's figure beside them.
    assert!(
        md.contains("| 0.100 (0.000-0.200) | ~0 by 200k | 0.10 (0.00-0.20) | 0.30 (0.00-0.60) |"),
        "{md}"
    );
    assert!(md.contains("![copy learning curves](figures/copy-curves.svg)"));
    assert!(md.contains("runs/copy/ff-ntm/seed0"));
    let svg = std::fs::read_to_string(out.join("figures/copy-curves.svg")).unwrap();
    assert!(svg.contains("lstm-ntm") && svg.contains("<svg"));
}
