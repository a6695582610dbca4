//! A tiny sweep with the real `ntm` binary: two runs of a few steps, the report, and the skip and
//! resume rules of `cargo xtask train-all`.

use std::path::PathBuf;

use xtask::sweep::{run_all, Outcome, SweepOptions};
use xtask::{report, Experiment, Sweep};

const EXPERIMENT: &str = r#"
task = "copy"
eval = ["3", "6"]
show = "6"
[models.ff-ntm]
size = 8
layers = 1
heads = 1
lr = 1e-3
[models.lstm]
size = 8
layers = 1
lr = 1e-3
[profiles.tiny]
seeds = 1
eval_sequences = 8
set = ["model.memory.rows=16", "model.memory.width=4", "task.max_length=4", "train.batch_size=2",
       "train.max_sequences=8", "train.val_sequences=4", "train.eval_every=2", "train.log_every=1"]
"#;

#[test]
fn a_tiny_sweep_writes_a_report_and_reruns_skip_or_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = Experiment::parse(EXPERIMENT)
        .unwrap()
        .runs("tiny", None)
        .unwrap();
    assert_eq!(runs.len(), 2);
    let opts = SweepOptions {
        ntm: PathBuf::from(env!("CARGO_BIN_EXE_ntm")),
        out: tmp.path().to_path_buf(),
        jobs: 2,
        threads: 1,
        device: "cpu".to_string(),
    };

    let first = run_all(&runs, &opts, &|_, _| {}).unwrap();
    assert_eq!(first, vec![Outcome::Trained, Outcome::Trained]);
    let md = std::fs::read_to_string(report::write_report(tmp.path()).unwrap()).unwrap();
    assert!(md.contains("| copy |"), "{md}");
    assert!(md.contains("| ff-ntm |") && md.contains("| lstm |"), "{md}");
    assert!(md.contains("at 3 |") && md.contains("at 6 |"), "{md}");
    assert!(tmp.path().join("figures/copy-curves.svg").exists());
    // The device reached every run.
    let summary =
        std::fs::read_to_string(tmp.path().join(&runs[0].dir).join("summary.json")).unwrap();
    assert!(summary.contains("\"device\": \"cpu\""), "{summary}");
    assert!(tmp.path().join("figures/copy-ff-ntm-weights.png").exists());
    assert!(
        !tmp.path().join("figures/copy-lstm-weights.png").exists(),
        "the baseline has no memory to show"
    );

    // A finished run is skipped; an interrupted one (checkpoint, no summary) resumes.
    std::fs::remove_file(tmp.path().join(&runs[1].dir).join("summary.json")).unwrap();
    let second = run_all(&runs, &opts, &|_, _| {}).unwrap();
    assert_eq!(second, vec![Outcome::Skipped, Outcome::Resumed]);

    // A run that cannot start is reported and does not stop the others.
    let mut broken = runs.clone();
    broken[0].sets.push("train.batch_sise=1".into());
    broken[0].dir = PathBuf::from("runs/copy/ff-ntm/broken");
    let third = run_all(&broken, &opts, &|_, _| {}).unwrap();
    assert!(
        matches!(&third[0], Outcome::Failed(msg) if msg.contains("batch_sise")),
        "{third:?}"
    );
    assert_eq!(third[1], Outcome::Skipped);

    // A model's `eval.rows` reaches `ntm eval` and `ntm show` through the run's config: more
    // rows than the run trains with (16) are evaluated, fewer are refused before training.
    for (rows, ok) in [(32, true), (8, false)] {
        let mut wider = runs[0].clone();
        wider.sets.push(format!("eval.rows={rows}"));
        wider.dir = PathBuf::from(format!("runs/copy/ff-ntm/rows{rows}"));
        let outcome = run_all(std::slice::from_ref(&wider), &opts, &|_, _| {}).unwrap();
        let dir = tmp.path().join(&wider.dir);
        match &outcome[0] {
            Outcome::Trained => assert!(ok, "{rows} rows"),
            Outcome::Failed(msg) => assert!(!ok && msg.contains("eval.rows = 8"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(dir.join("eval.json").exists(), ok, "{rows} rows");
        assert_eq!(
            dir.join(xtask::experiment::FIGURE).exists(),
            ok,
            "{rows} rows"
        );
    }
}
