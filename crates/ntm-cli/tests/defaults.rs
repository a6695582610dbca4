//! The experiment files in `tasks/` are the one source of every task's defaults: for each task
//! and model, `ntm train --print-config` is what a `paper` sweep of the file runs, up to the
//! profile's budget.

use std::path::Path;
use std::process::Command;

use ntm_train::RunConfig;
use xtask::{Experiment, Sweep};

/// The experiment files in `tasks/`.
fn experiments() -> Vec<Experiment> {
    Experiment::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tasks")).unwrap()
}

fn print_config(task: &str, model: Option<&str>, sets: &[String]) -> RunConfig {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ntm"));
    cmd.args(["train", "--task", task, "--print-config"]);
    if let Some(model) = model {
        cmd.args(["--model", model]);
    }
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{task} {model:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    RunConfig::from_toml(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

/// The keys a profile may change: its budget and stopping rule.
const BUDGET: [&str; 5] = [
    "train.max_sequences",
    "train.max_seconds",
    "train.target_cost",
    "train.patience",
    "train.eval_every",
];

fn without_budget(mut c: RunConfig) -> RunConfig {
    let d = ntm_train::TrainConfig::default();
    c.train.max_sequences = d.max_sequences;
    c.train.max_seconds = d.max_seconds;
    c.train.target_cost = d.target_cost;
    c.train.patience = d.patience;
    c.train.eval_every = d.eval_every;
    c
}

#[test]
fn the_default_of_every_task_and_model_is_its_experiment_files_paper_profile() {
    let experiments = experiments();
    assert_eq!(experiments.len(), 6);
    for e in &experiments {
        let runs = e.runs("paper", Some(1)).unwrap();
        for run in &runs {
            let default = print_config(&e.task, Some(&run.model), &[]);
            let what = format!("{} {}", e.task, run.model);
            // The profile changes the budget and nothing else.
            for set in &e.profiles["paper"].set {
                assert!(
                    BUDGET.iter().any(|k| set.starts_with(&format!("{k}="))),
                    "{what}: the paper profile sets `{set}`, which is not a budget"
                );
            }
            let swept = print_config(&e.task, Some(&run.model), &run.sets);
            assert_eq!(
                without_budget(default.clone()),
                without_budget(swept),
                "{what}"
            );
            // And the values are the file's, read independently of how they are applied.
            let spec = &e.models[&run.model];
            let model = default.model.as_ref().unwrap();
            assert_eq!(model.name(), run.model, "{what}");
            assert_eq!(
                (model.controller.size, model.controller.layers),
                (spec.size, spec.layers),
                "{what}"
            );
            assert_eq!(default.train.optimizer.lr(), spec.lr, "{what}");
            let option = |k: &str| model.memory.options.get(k).and_then(|v| v.as_integer());
            if let Some(heads) = spec.heads {
                assert_eq!(option("read_heads"), Some(heads as i64), "{what}");
            }
            for (key, value) in &spec.memory {
                assert_eq!(model.memory.options.get(key), Some(value), "{what}: {key}");
            }
        }
        // With no model named, the file's default model.
        let default = print_config(&e.task, None, &[]);
        assert_eq!(default.model.unwrap().name(), e.default_model, "{}", e.task);
    }
}

#[test]
fn every_tasks_fast_profile_trains_the_same_models_on_warmed_up_batches_with_adam() {
    for e in &experiments() {
        if !e.profiles.contains_key("fast") {
            // Batches slow N-grams down (its file says by how much).
            assert_eq!(e.task, "ngrams", "only N-grams goes without a fast profile");
            continue;
        }
        let runs = e.runs("fast", None).unwrap();
        assert_eq!(runs.len(), e.models.len(), "{}: one seed per model", e.task);
        for run in &runs {
            let what = format!("{} {}", e.task, run.model);
            let default = print_config(&e.task, Some(&run.model), &[]);
            let fast = print_config(&e.task, Some(&run.model), &run.sets);
            assert_eq!(
                default.model, fast.model,
                "{what}: the profile keeps the model"
            );
            assert_eq!(default.task, fast.task, "{what}: and the task");
            assert_eq!(default.eval, fast.eval, "{what}: and how it is evaluated");
            let train = &fast.train;
            // Batches of 16, or 8 where a model's entry says why (copy's LSTM NTM).
            assert!(
                [8, 16].contains(&train.batch_size),
                "{what}: batches of {}",
                train.batch_size
            );
            assert!(
                matches!(train.optimizer, ntm_train::OptimizerConfig::Adam { .. }),
                "{what}: {:?}",
                train.optimizer
            );
            assert_eq!(train.schedule.warmup, 4000, "{what}");
            // A schedule the model's default has (the repeat-copy DNC's decay) stays.
            assert_eq!(
                train.schedule.decay_at, default.train.schedule.decay_at,
                "{what}"
            );
            assert!(
                train.max_seconds > 0.0,
                "{what}: a fast run has a time limit"
            );
        }
    }
}

#[test]
fn the_lstm_ntms_of_copy_and_repeat_copy_train_on_32_rows_and_are_evaluated_on_the_papers_128() {
    let rows = |c: &RunConfig| ntm_train::config::memory_rows(c.model.as_ref().unwrap());
    for task in ["copy", "repeat-copy"] {
        let ntm = print_config(task, Some("lstm-ntm"), &[]);
        assert_eq!((rows(&ntm), ntm.eval.rows), (Some(32), Some(128)), "{task}");
        // The models without that departure train and run with the paper's 128.
        let ff = print_config(task, Some("ff-ntm"), &[]);
        assert_eq!((rows(&ff), ff.eval.rows), (Some(128), None), "{task}");
    }
    let recall = print_config("associative-recall", Some("lstm-ntm"), &[]);
    assert_eq!(recall.eval.rows, None);
}

#[test]
fn a_default_without_a_convergence_threshold_trains_for_sequences_not_minutes() {
    // A time limit would give a seed a different run on a slower or busier machine.
    // Every model of such a task trains on the same number of sequences, so that their costs
    // compare as the paper's curves do.
    let mut open_ended = Vec::new();
    for e in &experiments() {
        if print_config(&e.task, None, &[]).train.target_cost != 0.0 {
            continue;
        }
        let mut budgets = Vec::new();
        for model in e.models.keys() {
            let train = print_config(&e.task, Some(model), &[]).train;
            let what = format!("{} {model}", e.task);
            assert_eq!(train.target_cost, 0.0, "{what}");
            assert_eq!(train.max_seconds, 0.0, "{what}");
            assert!(train.max_sequences > 0, "{what}");
            budgets.push(train.max_sequences);
        }
        budgets.dedup();
        assert_eq!(budgets.len(), 1, "{}: {budgets:?}", e.task);
        open_ended.push(e.task.clone());
    }
    open_ended.sort();
    assert_eq!(open_ended, ["ngrams", "priority-sort"]);
}
