//! Trainer behaviour: exact resume, the NaN guard, checkpoint validation, metrics and summary.

use std::path::Path;

use candle_core::{Device, Tensor};
use ntm_train::trainer::files;
use ntm_train::{read_metrics, Quiet, RunConfig, TrainError, Trainer};

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
    trainer.set_train_limits(40, 0.0);
    let err = trainer.run(&dir, &mut Quiet).unwrap_err();
    assert!(
        matches!(err, TrainError::NonFinite { step: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("step 4"), "{err}");
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
        err.contains("shape") && err.contains("does not match"),
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
