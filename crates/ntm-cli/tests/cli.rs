//! The `ntm` command end to end: a tiny run trained, evaluated and shown, and every kind of bad
//! input answered with a one-line error and a non-zero exit.

use std::path::Path;
use std::process::{Command, Output};

fn ntm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ntm"))
        .args(args)
        .output()
        .expect("the ntm binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails with exactly one line on stderr that starts with `error:` and mentions `needle`.
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line: {err}");
    assert!(
        lines[0].starts_with("error:") && lines[0].contains(needle),
        "`{needle}` not in: {err}"
    );
}

const TINY: [&str; 16] = [
    "--set",
    "model.controller.size=8",
    "--set",
    "model.memory.rows=16",
    "--set",
    "model.memory.width=4",
    "--set",
    "train.batch_size=4",
    "--set",
    "train.max_sequences=16",
    "--set",
    "train.val_sequences=8",
    "--set",
    "train.eval_every=2",
    "--set",
    "task.max_length=4",
];

fn train_tiny(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--task",
        "copy",
        "--model",
        "ff-ntm",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend(TINY);
    args.extend(extra);
    ntm(&args)
}

#[test]
fn train_eval_show_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let out = train_tiny(&run, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["task"], "copy");
    assert_eq!(summary["model"], "ff-ntm");
    assert_eq!(summary["sequences"], 16);

    let eval = ntm(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--lengths",
        "3,6",
        "--sequences",
        "8",
        "--json",
    ]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let json: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert!(
        json["3"].as_f64().is_some() && json["6"].as_f64().is_some(),
        "{json}"
    );

    // With a larger memory than it trained with, not a smaller one.
    let rows = |r: &str| {
        let args = ["eval", "--run", run.to_str().unwrap(), "--lengths", "3"];
        ntm(&[&args[..], &["--sequences", "4", "--json", "--rows", r]].concat())
    };
    let wide = rows("32");
    assert!(wide.status.success(), "{}", stderr(&wide));
    let json: serde_json::Value = serde_json::from_slice(&wide.stdout).unwrap();
    assert!(json["3"].as_f64().is_some(), "{json}");
    assert_clean_failure(&rows("8"), "trained with 16");

    let png = tmp.path().join("fig.png");
    let show = ntm(&[
        "show",
        "--run",
        run.to_str().unwrap(),
        "--length",
        "5",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(show.status.success(), "{}", stderr(&show));
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");

    // The run exists: training into it again needs --resume, which then extends it.
    assert_clean_failure(&train_tiny(&run, &[]), "--resume");
    let resumed = ntm(&[
        "train",
        "--resume",
        "--out",
        run.to_str().unwrap(),
        "--set",
        "train.max_sequences=24",
    ]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["sequences"], 24);
}

#[test]
fn an_ngrams_evaluation_prints_the_bayes_optimum_of_the_same_sequences() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut args = vec!["train", "--task", "ngrams", "--model", "ff-ntm"];
    args.extend(["--out", run.to_str().unwrap(), "--set", "task.length=24"]);
    args.extend(&TINY[..14]);
    let out = ntm(&args);
    assert!(out.status.success(), "{}", stderr(&out));

    let args = ["eval", "--run", run.to_str().unwrap(), "--sequences", "8"];
    let eval = ntm(&[&args[..], &["--lengths", "24"]].concat());
    assert!(eval.status.success(), "{}", stderr(&eval));
    let text = String::from_utf8_lossy(&eval.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].contains("Bayes optimum"), "{text}");
    let row: Vec<f64> = lines[2]
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    // size, cost, cross-entropy, optimum, cost above it
    assert_eq!(row.len(), 5, "{text}");
    assert!(row[3] > 0.0 && row[3] < 24.0, "{text}");
    assert!((row[4] - (row[1] - row[3])).abs() < 2e-3, "{text}");
    let json = ntm(&[&args[..], &["--lengths", "24", "--json"]].concat());
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        (json["24"].as_f64().unwrap() - row[1]).abs() < 1e-3,
        "{json}"
    );
}

#[test]
fn bad_input_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert_clean_failure(
        &ntm(&[
            "train",
            "--task",
            "sorting",
            "--out",
            dir.join("a").to_str().unwrap(),
        ]),
        "sorting",
    );
    assert_clean_failure(
        &ntm(&["train", "--task", "copy", "--set", "train.batch_sise=3"]),
        "batch_sise",
    );
    let bad_toml = dir.join("bad.toml");
    std::fs::write(&bad_toml, "[train\nbatch_size = 3").unwrap();
    assert_clean_failure(
        &ntm(&[
            "train",
            "--task",
            "copy",
            "--config",
            bad_toml.to_str().unwrap(),
        ]),
        "TOML",
    );
    assert_clean_failure(
        &ntm(&[
            "train",
            "--task",
            "copy",
            "--config",
            dir.join("none.toml").to_str().unwrap(),
        ]),
        "none.toml",
    );
    assert_clean_failure(
        &ntm(&["eval", "--run", dir.join("missing").to_str().unwrap()]),
        "missing",
    );

    // A corrupt checkpoint, and a checkpoint whose shapes do not match its config.
    let run = dir.join("run");
    assert!(train_tiny(&run, &[]).status.success());
    assert_clean_failure(
        &ntm(&["eval", "--run", run.to_str().unwrap(), "--lengths", "0"]),
        "copy",
    );
    let ckpt = run.join("checkpoint.safetensors");
    let good = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &good[..good.len() / 3]).unwrap();
    assert_clean_failure(
        &ntm(&["eval", "--run", run.to_str().unwrap(), "--sequences", "4"]),
        "checkpoint",
    );
    std::fs::write(&ckpt, &good).unwrap();
    let config = run.join("config.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("size = 8", "size = 9");
    std::fs::write(&config, text).unwrap();
    assert_clean_failure(
        &ntm(&["eval", "--run", run.to_str().unwrap(), "--sequences", "4"]),
        "does not match",
    );
}

#[test]
fn print_config_shows_the_embedded_default() {
    let out = ntm(&[
        "train",
        "--task",
        "associative-recall",
        "--model",
        "ff-ntm",
        "--print-config",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("name = \"associative-recall\""), "{text}");
    assert!(
        text.contains("size = 256") && text.contains("read_heads = 4"),
        "{text}"
    );
}

#[test]
fn the_reference_kernels_train_the_same_model_and_any_controller_pairs_with_the_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let val_loss = |dir: &Path| -> f64 {
        let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
        let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
        summary["val_loss"].as_f64().unwrap()
    };
    let (fused, reference) = (tmp.path().join("fused"), tmp.path().join("reference"));
    assert!(train_tiny(&fused, &[]).status.success());
    assert!(train_tiny(&reference, &["--kernels", "reference"])
        .status
        .success());
    let (a, b) = (val_loss(&fused), val_loss(&reference));
    assert!((a - b).abs() < 1e-3 * a.abs(), "fused {a}, reference {b}");

    let gru = tmp.path().join("gru");
    let mut args = vec!["train", "--task", "copy", "--model", "gru-ntm"];
    args.extend(["--out", gru.to_str().unwrap()]);
    args.extend(TINY);
    let out = ntm(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read_to_string(gru.join("config.toml")).unwrap();
    assert!(config.contains("kind = \"gru\""), "{config}");
    assert_clean_failure(
        &ntm(&["train", "--task", "copy", "--model", "rnn-ntm"]),
        "rnn-ntm",
    );
}

/// The height in pixels of a PNG (from its header).
fn png_height(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]])
}

#[test]
fn a_dnc_run_trains_and_shows_its_usage_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let show = |run: &Path, png: &Path| {
        let out = ntm(&[
            "show",
            "--run",
            run.to_str().unwrap(),
            "--length",
            "5",
            "--out",
            png.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read(png).unwrap()
    };
    let dnc = tmp.path().join("dnc");
    let mut args = vec!["train", "--task", "copy", "--model", "lstm-dnc"];
    args.extend(["--out", dnc.to_str().unwrap()]);
    args.extend(TINY);
    let out = ntm(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read_to_string(dnc.join("config.toml")).unwrap();
    assert!(config.contains("kind = \"dnc\""), "{config}");
    let dnc_png = show(&dnc, &tmp.path().join("dnc.png"));
    let ntm_run = tmp.path().join("ntm");
    assert!(train_tiny(&ntm_run, &[]).status.success());
    let ntm_png = show(&ntm_run, &tmp.path().join("ntm.png"));
    assert_eq!(&dnc_png[..8], b"\x89PNG\r\n\x1a\n");
    // Usage, allocation, links and read modes below the weightings: a taller figure.
    assert!(png_height(&dnc_png) > png_height(&ntm_png) + 200);
}

#[test]
fn bench_measures_a_model_at_the_rows_it_is_evaluated_with() {
    // Copy's LSTM NTM trains on 32 rows and is evaluated on the paper's 128, which is what the
    // benchmark measures; rows set on the command line still win.
    let rows = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--task",
            "copy",
            "--json",
            "--seconds",
            "0.01",
            "--warmup",
            "0",
        ];
        args.extend(extra);
        let out = ntm(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["rows"].as_i64().unwrap()
    };
    assert_eq!(rows(&[]), 128);
    assert_eq!(rows(&["--set", "model.memory.rows=64"]), 64);
    // The scaling sweep runs that model on more rows than it is evaluated with.
    let out = ntm(&["bench", "--scaling", "--rows", "256", "--lengths", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_scaling_sweep_measures_growth_with_rows_and_length() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ntm(&[
        "bench",
        "--scaling",
        "--model",
        "ff-ntm",
        "--rows",
        "16,64",
        "--lengths",
        "3,12",
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // Rows: rows, length, steps, ms per step, held MiB, held per step KiB.
    let rows: Vec<Vec<f64>> = text
        .lines()
        .filter_map(|l| {
            let v: Vec<f64> = l
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            (v.len() == 6).then_some(v)
        })
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    // Four times the rows hold more for the backward pass; four times the steps, too.
    assert!(rows[1][4] > rows[0][4], "{text}");
    assert!(rows[3][4] > 2.0 * rows[2][4], "{text}");
    for name in ["scaling-rows.svg", "scaling-length.svg"] {
        let svg = std::fs::read_to_string(tmp.path().join(name)).unwrap();
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{name}"
        );
    }
}
