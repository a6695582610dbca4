//! Trainer behaviour: exact resume, the NaN guard, checkpoint validation, metrics and summary.

use std::path::Path;

use candle_core::{Device, Tensor};
use ntm_train::trainer::files;
use ntm_train::{
    read_metrics, read_sessions, Observer, Quiet, RunConfig, RunDir, StepStats, TrainError, Trainer,
};

fn tiny(max_sequences: u64, extra: &[&str]) -> RunConfig {
    let mut sets: Vec<String> = [
        "model.controller.size=8",
        "model.memory.rows=8",
        "model.memory.width=4",
        "task.max_length=4",
        "train.batch_size=4",
        "train.val_sequences=8",
        "train.val_batch=4",
        "train.eval_every=2",
        "train.log_every=1",
        "train.checkpoint_every=3",
        "train.target_cost=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sets.push(format!("train.max_sequences={max_sequences}"));
    sets.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::resolve(Some("copy"), Some("lstm-ntm"), None, &sets).unwrap()
}

fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let ckpt = ntm_train::checkpoint::load(&dir.join(files::CHECKPOINT), &Device::Cpu).unwrap();
    let mut all: Vec<(String, Vec<f32>)> = ckpt
        .tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Metrics without the timing fields, which differ between runs.
fn untimed(dir: &Path) -> Vec<String> {
    read_metrics(dir)
        .unwrap()
        .into_iter()
        .map(|r| {
            format!(
                "{} {} {:.9} {:.6} {:?} {:?}",
                r.step, r.sequences, r.loss, r.bits_per_seq, r.val_bits_per_seq, r.val_loss
            )
        })
        .collect()
}

#[test]
fn resume_reaches_the_same_state_as_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, split) = (tmp.path().join("full"), tmp.path().join("split"));

    let summary = Trainer::new(tiny(32, &[]), &Device::Cpu)
        .unwrap()
        .run(&full, &mut Quiet)
        .unwrap();
    assert_eq!((summary.steps, summary.sequences), (8, 32));

    // Stop after 5 steps (the last checkpoint is then written at the end, step 5) ...
    Trainer::new(tiny(20, &[]), &Device::Cpu)
        .unwrap()
        .run(&split, &mut Quiet)
        .unwrap();
    // ... leave a metrics line past the checkpoint, as a kill between checkpoints would ...
    let stale = "{\"step\":6,\"sequences\":24,\"loss\":1.0,\"bits_per_seq\":1.0,\"seq_per_s\":1.0,\"wall_seconds\":1.0}\n";
    let metrics = split.join(files::METRICS);
    std::fs::write(&metrics, std::fs::read_to_string(&metrics).unwrap() + stale).unwrap();
    // ... and resume with the larger budget.
    let mut resumed = Trainer::new(tiny(32, &[]), &Device::Cpu).unwrap();
    resumed
        .load_checkpoint(&split.join(files::CHECKPOINT))
        .unwrap();
    assert_eq!(resumed.progress().step, 5);
    resumed.run(&split, &mut Quiet).unwrap();

    assert_eq!(weights(&full), weights(&split));
    assert_eq!(untimed(&full), untimed(&split));
    assert_eq!(untimed(&full).len(), 8);
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, seed) in [("a", 1), ("b", 1), ("c", 2)] {
        let config = tiny(12, &[&format!("seed={seed}")]);
        Trainer::new(config, &Device::Cpu)
            .unwrap()
            .run(&tmp.path().join(name), &mut Quiet)
            .unwrap();
    }
    assert_eq!(
        weights(&tmp.path().join("a")),
        weights(&tmp.path().join("b"))
    );
    assert_ne!(
        weights(&tmp.path().join("a")),
        weights(&tmp.path().join("c"))
    );
}

#[test]
fn a_nan_stops_training_naming_the_step_and_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut trainer = Trainer::new(tiny(12, &[]), &Device::Cpu).unwrap();
    trainer.run(&dir, &mut Quiet).unwrap();
    let before = weights(&dir);

    // Poison one weight; the next update's loss is NaN.
    let (_, var) = trainer
        .model()
        .params()
        .named_vars()
        .into_iter()
        .find(|(n, _)| n == "output.weight")
        .unwrap();
    let nan = Tensor::full(f32::NAN, var.dims(), &Device::Cpu).unwrap();
    var.set(&nan).unwrap();
    trainer.set_train_limits(40, 0.0).unwrap();
    let err = trainer.run(&dir, &mut Quiet).unwrap_err();
    let TrainError::Stopped { cause, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(**cause, TrainError::NonFinite { step: 4, .. }),
        "{err}"
    );
    // The message tells the truth about what is on disk.
    assert!(
        err.to_string().contains("step 4") && err.to_string().contains("of step 3 and is kept"),
        "{err}"
    );
    assert_eq!(weights(&dir), before);
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    Trainer::new(tiny(4, &[]), &Device::Cpu)
        .unwrap()
        .run(&dir, &mut Quiet)
        .unwrap();
    let ckpt = dir.join(files::CHECKPOINT);

    // A checkpoint of another model size.
    let mut other = Trainer::new(tiny(4, &["model.controller.size=9"]), &Device::Cpu).unwrap();
    let err = other.load_checkpoint(&ckpt).unwrap_err().to_string();
    assert!(
        err.contains("model.controller.size") && err.contains("cannot change"),
        "{err}"
    );

    // A truncated file.
    let bytes = std::fs::read(&ckpt).unwrap();
    let cut = tmp.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mut same = Trainer::new(tiny(4, &[]), &Device::Cpu).unwrap();
    assert!(matches!(
        same.load_checkpoint(&cut),
        Err(TrainError::Checkpoint(_))
    ));

    // Garbage and a missing file.
    let junk = tmp.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    assert!(matches!(
        same.load_checkpoint(&junk),
        Err(TrainError::Checkpoint(_))
    ));
    let err = same
        .load_checkpoint(&tmp.path().join("none.safetensors"))
        .unwrap_err();
    assert!(matches!(err, TrainError::Io { .. }), "{err}");

    // A good one still loads.
    same.load_checkpoint(&ckpt).unwrap();
}

#[test]
fn atomic_writes_replace_whole_files_and_leave_no_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("file.bin");
    ntm_train::checkpoint::write_atomic(&path, b"first version").unwrap();
    ntm_train::checkpoint::write_atomic(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn the_target_cost_stops_training_and_the_summary_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    // Any cost is below an absurdly high target: the first validation converges.
    let config = tiny(1000, &["train.target_cost=1000", "train.patience=1"]);
    let summary = Trainer::new(config, &Device::Cpu)
        .unwrap()
        .run(tmp.path(), &mut Quiet)
        .unwrap();
    assert!(summary.converged);
    assert_eq!(summary.steps, 2);
    assert_eq!(summary.converged_at_sequences, Some(8));
    let text = std::fs::read_to_string(tmp.path().join(files::SUMMARY)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "task",
        "model",
        "params",
        "sequences",
        "wall_seconds",
        "val_bits_per_seq",
        "seq_per_s",
    ] {
        assert!(json.get(key).is_some(), "summary lacks {key}: {text}");
    }
    assert_eq!(json["task"], "copy");
}

/// Stops the run (as a signal would) once `after` updates have been applied in this session.
struct StopAfter(u64);

impl Observer for StopAfter {
    fn on_step(&mut self, _: &StepStats) {
        self.0 = self.0.saturating_sub(1);
    }
    fn should_stop(&mut self) -> bool {
        self.0 == 0
    }
}

fn resumed(config: RunConfig, dir: &Path) -> Trainer {
    let mut t = Trainer::new(config, &Device::Cpu).unwrap();
    t.load_checkpoint(&dir.join(files::CHECKPOINT)).unwrap();
    t
}

#[test]
fn a_stop_request_checkpoints_the_last_update_and_resuming_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, split) = (tmp.path().join("full"), tmp.path().join("split"));
    Trainer::new(tiny(40, &[]), &Device::Cpu)
        .unwrap()
        .run(&full, &mut Quiet)
        .unwrap();
    // Step 4 is no multiple of checkpoint_every = 3: the checkpoint comes from the stop.
    let err = Trainer::new(tiny(40, &[]), &Device::Cpu)
        .unwrap()
        .run(&split, &mut StopAfter(4))
        .unwrap_err();
    assert!(
        matches!(err, TrainError::Interrupted { step: 4, .. }),
        "{err}"
    );
    assert!(!split.join(files::SUMMARY).exists());
    let mut rest = resumed(tiny(40, &[]), &split);
    assert_eq!(rest.progress().step, 4);
    rest.run(&split, &mut Quiet).unwrap();
    assert_eq!(weights(&full), weights(&split));
}

#[test]
fn stop_and_resume_with_a_target_converges_where_an_uninterrupted_run_does() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, split) = (tmp.path().join("full"), tmp.path().join("split"));
    // Every validation is below the target; the third in a row (step 6) converges.
    let target = ["train.target_cost=1000", "train.patience=3"];
    let whole = Trainer::new(tiny(400, &target), &Device::Cpu)
        .unwrap()
        .run(&full, &mut Quiet)
        .unwrap();
    assert_eq!(whole.converged_at_sequences, Some(24));
    // Stopped by its budget at step 5, between validations: the closing validation of that
    // session must not count toward the streak.
    Trainer::new(tiny(20, &target), &Device::Cpu)
        .unwrap()
        .run(&split, &mut Quiet)
        .unwrap();
    let mut rest = resumed(tiny(400, &target), &split);
    let summary = rest.run(&split, &mut Quiet).unwrap();
    assert_eq!(summary.converged_at_sequences, Some(24));
    assert_eq!(summary.steps, whole.steps);
    assert_eq!(weights(&full), weights(&split));
}

#[test]
fn a_resumed_run_changes_budgets_only_and_the_metrics_record_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    Trainer::new(tiny(8, &[]), &Device::Cpu)
        .unwrap()
        .run(&dir, &mut Quiet)
        .unwrap();
    let ckpt = dir.join(files::CHECKPOINT);
    for (set, key) in [
        ("train.optimizer.lr=0.01", "train.optimizer.lr"),
        ("seed=5", "seed"),
        ("task.max_length=3", "task.max_length"),
    ] {
        let mut t = Trainer::new(tiny(8, &[set]), &Device::Cpu).unwrap();
        let err = t.load_checkpoint(&ckpt).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains("cannot change"), "{err}");
    }
    let mut more = resumed(tiny(16, &[]), &dir);
    more.run(&dir, &mut Quiet).unwrap();
    let sessions = read_sessions(&dir).unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!((sessions[0].step, sessions[0].device.as_str()), (0, "cpu"));
    assert!(sessions[0].config_changes.is_empty());
    let changes = &sessions[1].config_changes;
    assert_eq!(sessions[1].step, 2);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].key, "train.max_sequences");
    assert_eq!(changes[0].from.as_deref(), Some("8"));
    assert_eq!(changes[0].to.as_deref(), Some("16"));
    // Records stay readable around the change line.
    assert_eq!(read_metrics(&dir).unwrap().last().unwrap().step, 4);
}

#[test]
fn a_learning_rate_that_overflows_never_reaches_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    // Not finite in f32 at all: refused before training.
    let err = Trainer::new(tiny(8, &["train.optimizer.lr=1e39"]), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("learning rate"), "{err}");
    // Finite, but the first update overflows the weights: stopped, nothing written.
    let dir = tmp.path().join("run");
    let err = Trainer::new(tiny(8, &["train.optimizer.lr=1e38"]), &Device::Cpu)
        .unwrap()
        .run(&dir, &mut Quiet)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("parameters after the update became non-finite at step 1")
            && err.contains("no checkpoint was written"),
        "{err}"
    );
    assert!(!dir.join(files::CHECKPOINT).exists());
    assert!(!dir.join(files::SUMMARY).exists());
}

#[test]
fn checkpoints_with_non_finite_values_are_neither_written_nor_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut trainer = Trainer::new(tiny(4, &[]), &Device::Cpu).unwrap();
    trainer.run(&dir, &mut Quiet).unwrap();
    let good = std::fs::read(dir.join(files::CHECKPOINT)).unwrap();
    let (_, var) = trainer.model().params().named_vars().remove(0);
    let mut values = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    values[0] = f32::INFINITY;
    var.set(&Tensor::from_vec(values, var.dims(), &Device::Cpu).unwrap())
        .unwrap();
    let err = trainer
        .save_checkpoint(&dir.join(files::CHECKPOINT))
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 non-finite"), "{err}");
    assert_eq!(std::fs::read(dir.join(files::CHECKPOINT)).unwrap(), good);

    // A file that holds one anyway (written by hand) is refused on load.
    let ckpt = ntm_train::checkpoint::load(&dir.join(files::CHECKPOINT), &Device::Cpu).unwrap();
    let mut tensors = ckpt.tensors.clone();
    let name = tensors
        .keys()
        .find(|k| k.starts_with("model."))
        .unwrap()
        .clone();
    let shape = tensors[&name].dims().to_vec();
    tensors.insert(name, Tensor::full(f32::NAN, shape, &Device::Cpu).unwrap());
    let metadata = std::collections::HashMap::from([
        (
            "ntm.progress".to_string(),
            serde_json::to_string(&ckpt.progress).unwrap(),
        ),
        ("ntm.config".to_string(), ckpt.config.clone()),
    ]);
    let bytes = safetensors::serialize(tensors.iter(), Some(metadata)).unwrap();
    std::fs::write(dir.join(files::CHECKPOINT), bytes).unwrap();
    let err = ntm_train::load_run(&dir, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("non-finite"), "{err}");
}

#[test]
fn one_writer_per_directory_and_never_into_a_foreign_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let held = RunDir::acquire(&dir).unwrap();
    let err = Trainer::new(tiny(4, &[]), &Device::Cpu)
        .unwrap()
        .run(&dir, &mut Quiet)
        .unwrap_err();
    assert!(matches!(err, TrainError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("process"), "{err}");
    drop(held);

    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("metrics.jsonl"), b"my own numbers\n").unwrap();
    std::fs::write(foreign.join("notes.md"), b"keep me").unwrap();
    let err = Trainer::new(tiny(4, &[]), &Device::Cpu)
        .unwrap()
        .run(&foreign, &mut Quiet)
        .unwrap_err();
    assert!(matches!(err, TrainError::NotARun { .. }), "{err}");
    assert_eq!(
        std::fs::read(foreign.join("metrics.jsonl")).unwrap(),
        b"my own numbers\n"
    );
}

#[test]
fn metrics_that_are_not_ours_stop_a_resume_and_a_torn_last_line_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    Trainer::new(tiny(8, &[]), &Device::Cpu)
        .unwrap()
        .run(&dir, &mut Quiet)
        .unwrap();
    let metrics = dir.join(files::METRICS);
    let text = std::fs::read_to_string(&metrics).unwrap();

    // A kill in the middle of a line leaves it without its newline: dropped on resume.
    std::fs::write(&metrics, format!("{text}{{\"step\":3,\"sequ")).unwrap();
    resumed(tiny(12, &[]), &dir).run(&dir, &mut Quiet).unwrap();
    assert_eq!(read_metrics(&dir).unwrap().last().unwrap().step, 3);

    // A whole line that is not a record is an error naming the line; nothing is rewritten.
    let text = std::fs::read_to_string(&metrics).unwrap();
    let broken = text.replacen('\n', "\nnot json\n", 1);
    std::fs::write(&metrics, &broken).unwrap();
    let err = resumed(tiny(16, &[]), &dir)
        .run(&dir, &mut Quiet)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("metrics.jsonl"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&metrics).unwrap(), broken);
}

#[test]
fn the_checkpoint_config_is_the_truth_and_an_edited_config_toml_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    Trainer::new(tiny(4, &[]), &Device::Cpu)
        .unwrap()
        .run(&dir, &mut Quiet)
        .unwrap();
    let config = dir.join(files::CONFIG);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("init = \"constant\""), "{text}");
    std::fs::write(
        &config,
        text.replace("init = \"constant\"", "init = \"random\""),
    )
    .unwrap();
    let err = ntm_train::load_run(&dir, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.memory.init") && err.contains("does not match the checkpoint"),
        "{err}"
    );
    // A changed budget is what a resumed run writes, and is accepted.
    std::fs::write(
        &config,
        text.replace("max_sequences = 4", "max_sequences = 40"),
    )
    .unwrap();
    ntm_train::load_run(&dir, &Device::Cpu).unwrap();
}

#[test]
fn the_dtype_is_a_config_key_checked_against_the_device() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(tiny(8, &["model.dtype=f64"]), &Device::Cpu).unwrap();
    assert_eq!(t.model().params().dtype(), candle_core::DType::F64);
    let stats = t.step().unwrap();
    assert!(stats.loss_bits.is_finite());
    t.run(&tmp.path().join("f64"), &mut Quiet).unwrap();
    let summary = std::fs::read_to_string(tmp.path().join("f64").join(files::SUMMARY)).unwrap();
    assert!(summary.contains("\"device\": \"cpu\""), "{summary}");

    let err = Trainer::new(tiny(8, &["model.dtype=bf16"]), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("bf16"), "{err}");
    let err =
        RunConfig::resolve(Some("copy"), None, None, &["model.dtype=f16".into()]).unwrap_err();
    assert!(err.to_string().contains("model.dtype"), "{err}");
}

fn params_of(t: &Trainer) -> Vec<f32> {
    t.model()
        .params()
        .named_vars()
        .iter()
        .flat_map(|(_, v)| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

#[test]
fn a_batch_in_shards_gives_the_same_update_on_any_number_of_threads() {
    let steps = |shards: usize, threads: usize| {
        let mut t = Trainer::new(
            tiny(
                400,
                &["train.batch_size=8", &format!("train.shards={shards}")],
            ),
            &Device::Cpu,
        )
        .unwrap();
        t.set_threads(threads);
        let stats: Vec<_> = (0..3).map(|_| t.step().unwrap()).collect();
        (params_of(&t), stats)
    };
    let (whole, whole_stats) = steps(1, 1);
    let (one_thread, one_stats) = steps(4, 1);
    let (two_threads, two_stats) = steps(4, 2);
    let (three_threads, _) = steps(4, 3);
    // The thread count never changes the result.
    assert_eq!(one_thread, two_threads);
    assert_eq!(one_thread, three_threads);
    assert_eq!(one_stats, two_stats);
    // Shards change only the order of a sum: the same update up to rounding.
    assert_ne!(whole, one_thread, "sharding changed nothing at all");
    let worst = whole
        .iter()
        .zip(&one_thread)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst < 1e-5, "{worst}");
    for (a, b) in whole_stats.iter().zip(&one_stats) {
        assert!(
            (a.loss_bits - b.loss_bits).abs() < 1e-4 * a.loss_bits,
            "{a:?} {b:?}"
        );
        assert!((a.cost - b.cost).abs() < 1e-9, "{a:?} {b:?}");
    }
    let sets = ["train.batch_size=4", "train.shards=5"].map(String::from);
    let err = RunConfig::resolve(Some("copy"), None, None, &sets).unwrap_err();
    assert!(err.to_string().contains("train.shards"), "{err}");
}

#[test]
fn a_schedule_sets_each_updates_rate_and_a_resumed_run_follows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, split) = (tmp.path().join("full"), tmp.path().join("split"));
    let schedule = [
        "train.optimizer.lr=0.01",
        "train.schedule.warmup=8",
        "train.schedule.decay_at=[16, 24]",
        "train.schedule.factor=0.5",
    ];
    Trainer::new(tiny(32, &schedule), &Device::Cpu)
        .unwrap()
        .run(&full, &mut Quiet)
        .unwrap();
    // Batches of 4: the updates after 0 and 4 sequences warm up, those after 16 and 24 decay.
    let rates: Vec<f64> = read_metrics(&full)
        .unwrap()
        .iter()
        .map(|r| r.lr.unwrap())
        .collect();
    let expected = [0.125, 0.625, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25].map(|s| s * 0.01);
    assert_eq!(rates.len(), expected.len());
    for (got, want) in rates.iter().zip(expected) {
        assert!((got - want).abs() < 1e-15, "{rates:?}");
    }

    Trainer::new(tiny(20, &schedule), &Device::Cpu)
        .unwrap()
        .run(&split, &mut Quiet)
        .unwrap();
    let mut resumed = Trainer::new(tiny(32, &schedule), &Device::Cpu).unwrap();
    resumed
        .load_checkpoint(&split.join(files::CHECKPOINT))
        .unwrap();
    resumed.run(&split, &mut Quiet).unwrap();
    assert_eq!(weights(&full), weights(&split));

    // The same run at a constant rate ends elsewhere.
    let constant = tmp.path().join("constant");
    Trainer::new(tiny(32, &schedule[..1]), &Device::Cpu)
        .unwrap()
        .run(&constant, &mut Quiet)
        .unwrap();
    assert_ne!(weights(&full), weights(&constant));
}

#[test]
fn a_schedule_out_of_range_is_a_config_error() {
    for bad in [
        "train.schedule.factor=0",
        "train.schedule.factor=1.5",
        "train.schedule.decay_at=[20, 10]",
    ] {
        let config = RunConfig::resolve(Some("copy"), Some("lstm-ntm"), None, &[bad.to_string()]);
        let err = config.and_then(|c| c.validate().map(|_| c)).unwrap_err();
        assert!(
            matches!(&err, TrainError::Config(m) if m.contains("train.schedule")),
            "{bad}: {err}"
        );
    }
}

#[test]
fn a_run_loads_with_a_larger_memory_whose_heads_start_where_they_trained() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    Trainer::new(tiny(12, &[]), &Device::Cpu)
        .unwrap()
        .run(&dir, &mut Quiet)
        .unwrap();
    let cost = |run: &ntm_train::LoadedRun| {
        ntm_train::evaluate(run.model.as_ref(), run.task.as_ref(), 8, 4, None, 3)
            .unwrap()
            .cost
    };
    let var = |run: &ntm_train::LoadedRun, name: &str| {
        let vars = run.model.params().named_vars();
        vars.into_iter().find(|(n, _)| n == name).unwrap().1
    };
    let trained = ntm_train::load_run(&dir, &Device::Cpu).unwrap();
    // The trained size is the trained model.
    let same = ntm_train::load_run_with_rows(&dir, &Device::Cpu, 8).unwrap();
    assert_eq!(cost(&trained), cost(&same));

    let wide = ntm_train::load_run_with_rows(&dir, &Device::Cpu, 20).unwrap();
    let rows = |run: &ntm_train::LoadedRun| {
        let model = run.config.model.as_ref().unwrap();
        model.memory.options["rows"].as_integer().unwrap()
    };
    assert_eq!((rows(&trained), rows(&wide)), (8, 20));
    let max_diff = |a: &Tensor, b: &Tensor| {
        let diff = (a - b).unwrap().abs().unwrap();
        diff.max_all().unwrap().to_scalar::<f32>().unwrap()
    };
    for name in ntm::memory::ROW_PARAMETERS {
        let name = format!("memory.{name}");
        let want = ntm::memory::widen_row_logits(var(&trained, &name).as_tensor(), 20).unwrap();
        let got = var(&wide, &name);
        assert_eq!(got.dims(), &[1, 20], "{name}");
        assert_eq!(max_diff(got.as_tensor(), &want), 0.0, "{name}");
    }
    let name = "controller.layer0.gates.weight";
    let (a, b) = (var(&wide, name), var(&trained, name));
    assert_eq!(max_diff(a.as_tensor(), b.as_tensor()), 0.0);
    assert!(cost(&wide).is_finite());

    let err = |rows| {
        ntm_train::load_run_with_rows(&dir, &Device::Cpu, rows)
            .unwrap_err()
            .to_string()
    };
    assert!(err(4).contains("trained with 8"), "{}", err(4));

    // Two sequences of another model, trained into `tmp/NAME`.
    let train = |name: &str, model: &str, sets: &[&str]| {
        let mut sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        sets.extend(["task.max_length=4", "train.max_sequences=2"].map(String::from));
        let config = RunConfig::resolve(Some("copy"), Some(model), None, &sets).unwrap();
        let dir = tmp.path().join(name);
        Trainer::new(config, &Device::Cpu)
            .unwrap()
            .run(&dir, &mut Quiet)
            .unwrap();
        dir
    };

    // A learned initial memory has a row of parameters per memory row.
    let learned = train(
        "learned",
        "lstm-ntm",
        &[
            "model.controller.size=8",
            "model.memory.rows=8",
            "model.memory.init=\"learned\"",
        ],
    );
    let err = ntm_train::load_run_with_rows(&learned, &Device::Cpu, 16)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("initial_memory") && err.contains("16 rows"),
        "{err}"
    );

    // No parameter of the DNC depends on the rows.
    let dnc = train(
        "dnc",
        "lstm-dnc",
        &["model.controller.size=8", "model.memory.rows=8"],
    );
    let wide = ntm_train::load_run_with_rows(&dnc, &Device::Cpu, 24).unwrap();
    assert_eq!(rows(&wide), 24);
    assert!(cost(&wide).is_finite());

    // A model without memory has no rows.
    let baseline = train("baseline", "lstm", &["model.controller.size=8"]);
    let err = ntm_train::load_run_with_rows(&baseline, &Device::Cpu, 16)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no memory"), "{err}");
}

#[test]
fn a_runs_eval_rows_choose_the_memory_it_is_evaluated_with() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = |run: &ntm_train::LoadedRun| {
        let model = run.config.model.as_ref().unwrap();
        model.memory.options["rows"].as_integer().unwrap()
    };
    let (plain, wide) = (tmp.path().join("plain"), tmp.path().join("wide"));
    for (dir, eval_rows) in [(&plain, None), (&wide, Some(20))] {
        // (Copy's LSTM NTM is evaluated on 128 rows by default.)
        let mut config = tiny(4, &[]);
        config.eval.rows = eval_rows;
        Trainer::new(config, &Device::Cpu)
            .unwrap()
            .run(dir, &mut Quiet)
            .unwrap();
    }
    let load = |dir: &Path, r| ntm_train::load_run_for_eval(dir, &Device::Cpu, r).unwrap();
    assert_eq!(rows(&load(&plain, None)), 8);
    assert_eq!(rows(&load(&wide, None)), 20);
    // The command line's rows win over the run's; training itself keeps the trained rows.
    assert_eq!(rows(&load(&wide, Some(8))), 8);
    assert_eq!(rows(&ntm_train::load_run(&wide, &Device::Cpu).unwrap()), 8);
    let config = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        RunConfig::from_toml(&text).unwrap()
    };
    assert_eq!(config(&wide).eval.rows, Some(20));
    assert!(!std::fs::read_to_string(plain.join("config.toml"))
        .unwrap()
        .contains("[eval]"));
    // Evaluating with other rows changes nothing that was trained, so a resume may change it.
    let mut more = config(&wide);
    more.eval.rows = Some(32);
    let changes = config(&wide).resume_changes(&more).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].key, "eval.rows");

    // Fewer rows than the model trains with, or a model without memory, are refused up front.
    let err = |model: &str, sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        RunConfig::resolve(Some("copy"), Some(model), None, &sets)
            .unwrap_err()
            .to_string()
    };
    let fewer = err("lstm-ntm", &["model.memory.rows=8", "eval.rows=4"]);
    assert!(
        fewer.contains("eval.rows = 4") && fewer.contains("8"),
        "{fewer}"
    );
    assert!(err("lstm", &["eval.rows=16"]).contains("no memory"));
    assert!(err("lstm-ntm", &["eval.rowz=16"]).contains("rowz"));

    // Copy's LSTM NTM trains on 32 rows and runs on 128 by default. A memory made larger than
    // that leaves the default's 128 no sense: the model then runs on the rows it trains with.
    let eval_rows = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        RunConfig::resolve(Some("copy"), Some("lstm-ntm"), None, &sets)
            .unwrap()
            .eval
            .rows
    };
    assert_eq!(eval_rows(&[]), Some(128));
    assert_eq!(eval_rows(&["model.memory.rows=64"]), Some(128));
    assert_eq!(eval_rows(&["model.memory.rows=128"]), Some(128));
    assert_eq!(eval_rows(&["model.memory.rows=256"]), None);
}
