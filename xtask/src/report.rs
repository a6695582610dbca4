//! `REPORT.md` from the run directories of a sweep: tables, learning curves and weightings.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ntm_plot::{LineChart, Series};
use serde_json::Value;

use crate::experiment::{model_rank, task_order, EVAL, FIGURE, MODEL_ORDER};
use crate::{io, Result};

/// Parameter counts the paper reports (Graves et al. 2014, tables 1-3).
pub fn paper_params(task: &str, model: &str) -> Option<u64> {
    let row = match task {
        "copy" => [17_162, 67_561, 1_352_969],
        "repeat-copy" => [16_712, 66_111, 5_312_007],
        "associative-recall" => [146_845, 70_330, 1_344_518],
        "ngrams" => [14_656, 61_749, 331_905],
        "priority-sort" => [508_305, 269_038, 384_424],
        _ => return None,
    };
    MODEL_ORDER.iter().position(|m| *m == model).map(|i| row[i])
}

/// The paper's result for `model` on `task`, approximate where read off its plots (Graves et
/// al. 2014, section 4), in bits per sequence.
pub fn paper_result(task: &str, model: &str) -> Option<&'static str> {
    let row = match task {
        "copy" => ["~0 by 200k", "~0 by 200k", "> 2 at 1M"],
        "repeat-copy" => ["~0 by 100k", "~0 by 100k", "~0 by 300k"],
        "associative-recall" => ["~0 by 30k", "~0 by 100k", "> 0 at 1M"],
        "ngrams" => ["133-134 (optimum 131-132)", "133-134", "~137"],
        "priority-sort" => ["far below the LSTM", "far below the LSTM", "~50 at 1M"],
        _ => return None,
    };
    MODEL_ORDER.iter().position(|m| *m == model).map(|i| row[i])
}

/// The median of `values` with `digits` decimals, and their range when there are several.
fn median_and_range(values: Vec<f64>, digits: usize) -> Option<String> {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let n = values.len();
    let med = median(values)?;
    Some(if n > 1 {
        format!("{med:.digits$} ({lo:.digits$}-{hi:.digits$})")
    } else {
        format!("{med:.digits$}")
    })
}

/// One finished run as found on disk.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Task name.
    pub task: String,
    /// Model kind.
    pub model: String,
    /// The run directory.
    pub dir: PathBuf,
    /// `summary.json`.
    pub summary: Value,
    /// `eval.json`, when written.
    pub eval: Option<Value>,
    /// `(sequences, validation cost)` at every validation.
    pub curve: Vec<(f64, f64)>,
}

impl RunResult {
    fn num(&self, key: &str) -> Option<f64> {
        self.summary.get(key).and_then(Value::as_f64)
    }
}

/// Every run directory under `out/runs/<task>/<model>/<seed>` with a `summary.json`, and the
/// directories that have none (failed or unfinished runs).
pub fn collect(out: &Path) -> Result<(Vec<RunResult>, Vec<PathBuf>)> {
    let mut done = Vec::new();
    let mut unfinished = Vec::new();
    let runs = out.join("runs");
    if !runs.exists() {
        return Ok((done, unfinished));
    }
    let subdirs = |p: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(io(p))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        Ok(v)
    };
    for task_dir in subdirs(&runs)? {
        for model_dir in subdirs(&task_dir)? {
            for dir in subdirs(&model_dir)? {
                let read = |name: &str| {
                    std::fs::read_to_string(dir.join(name))
                        .ok()
                        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                };
                let Some(summary) = read("summary.json") else {
                    unfinished.push(dir);
                    continue;
                };
                let curve = std::fs::read_to_string(dir.join("metrics.jsonl"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter_map(|r| {
                        Some((
                            r.get("sequences")?.as_f64()?,
                            r.get("val_bits_per_seq")?.as_f64()?,
                        ))
                    })
                    .collect();
                let name = |p: &Path| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                done.push(RunResult {
                    task: name(&task_dir),
                    model: name(&model_dir),
                    eval: read(EVAL),
                    summary,
                    curve,
                    dir,
                });
            }
        }
    }
    Ok((done, unfinished))
}

/// Sorts generalisation sizes numerically: `6 < 12`, `10x5 < 10x20 < 20x10`.
fn size_key(size: &str) -> Vec<u64> {
    size.split(['x', 'X'])
        .map(|p| p.trim().parse().unwrap_or(u64::MAX))
        .collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn minutes(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

fn or_dash(x: Option<String>) -> String {
    x.unwrap_or_else(|| "-".into())
}

/// The median curve of several seeds, with the min..max band where there is more than one.
/// With `above_optimum`, each cost less its run's Bayes-optimal cost of the validation set
/// (`val_optimal`); runs without one are left out.
fn curve_series(label: &str, runs: &[&RunResult], above_optimum: bool) -> Series {
    let mut by_x: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for r in runs {
        let offset = match (above_optimum, r.num("val_optimal")) {
            (false, _) => 0.0,
            (true, Some(optimum)) => optimum,
            (true, None) => continue,
        };
        for &(x, y) in &r.curve {
            by_x.entry(x as u64).or_default().push(y - offset);
        }
    }
    let points = by_x
        .iter()
        .filter_map(|(&x, ys)| Some((x as f64, median(ys.clone())?)))
        .collect();
    let series = Series::new(label, points);
    if runs.len() > 1 {
        let band = by_x
            .iter()
            .filter(|(_, ys)| ys.len() > 1)
            .map(|(&x, ys)| {
                (
                    x as f64,
                    ys.iter().copied().fold(f64::INFINITY, f64::min),
                    ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                )
            })
            .collect();
        series.with_band(band)
    } else {
        series
    }
}

/// Writes `out/REPORT.md` and its figures from the runs in `out/runs`; returns the report's path.
pub fn write_report(out: &Path) -> Result<PathBuf> {
    let (runs, unfinished) = collect(out)?;
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures).map_err(io(&figures))?;
    let order = task_order();
    let mut tasks: Vec<&str> = order
        .iter()
        .map(String::as_str)
        .filter(|t| runs.iter().any(|r| r.task == *t))
        .collect();
    for r in &runs {
        if !tasks.contains(&r.task.as_str()) {
            tasks.push(&r.task);
        }
    }

    let mut md = String::new();
    md.push_str("# Neural Turing Machine experiments\n\n");
    md.push_str("Costs are in bits per sequence on the fixed validation set: bit errors, or for N-grams the cross-entropy. ");
    md.push_str("Where a task has several seeds, figures show the median and its spread, and tables the median over seeds with the range in brackets. ");
    md.push_str("Rebuild with `cargo xtask report --out DIR`.\n\n");

    // The main table: final cost of every model on every task.
    let mut all_models: Vec<&str> = MODEL_ORDER.to_vec();
    for r in &runs {
        if !all_models.contains(&r.model.as_str()) {
            all_models.push(&r.model);
        }
    }
    all_models.sort_by_key(|m| model_rank(m));
    md.push_str("## Summary\n\n| task |");
    for m in &all_models {
        let _ = write!(md, " {m} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(all_models.len()));
    md.push('\n');
    for task in &tasks {
        let _ = write!(md, "| {task} |");
        for &m in &all_models {
            let group: Vec<&RunResult> = runs
                .iter()
                .filter(|r| r.task == *task && r.model == m)
                .collect();
            let cost = median(
                group
                    .iter()
                    .filter_map(|r| r.num("val_bits_per_seq"))
                    .collect(),
            );
            let conv = group
                .iter()
                .filter(|r| r.summary.get("converged").and_then(Value::as_bool) == Some(true))
                .count();
            let cell = match cost {
                Some(c) if conv > 0 => format!("{c:.2} (converged {conv}/{})", group.len()),
                Some(c) => format!("{c:.2}"),
                None => "-".into(),
            };
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }

    for task in &tasks {
        let task_runs: Vec<&RunResult> = runs.iter().filter(|r| r.task == *task).collect();
        let mut models: Vec<&str> = Vec::new();
        for r in &task_runs {
            if !models.contains(&r.model.as_str()) {
                models.push(&r.model);
            }
        }
        models.sort_by_key(|m| model_rank(m));
        let sizes: Vec<String> = {
            let mut s: Vec<String> = Vec::new();
            for r in &task_runs {
                if let Some(Value::Object(map)) = &r.eval {
                    for k in map.keys() {
                        if !s.contains(k) {
                            s.push(k.clone());
                        }
                    }
                }
            }
            s.sort_by_key(|k| size_key(k));
            s
        };
        let _ = writeln!(md, "\n## {task}\n");
        md.push_str("| model | parameters (paper) | seeds | converged | sequences to converge | time to converge | sequences | wall time | final bits/seq | paper (approx.) |");
        if *task == "ngrams" {
            md.push_str(" Bayes optimum |");
        }
        for s in &sizes {
            let _ = write!(md, " at {s} |");
        }
        md.push_str("\n|");
        md.push_str(&"---|".repeat(10 + usize::from(*task == "ngrams") + sizes.len()));
        md.push('\n');
        // N-grams' models all end within a few bits of the optimum, where a linear axis of the
        // whole curve (from about 190 bits) cannot tell them apart.
        let above_optimum = *task == "ngrams";
        let mut series = Vec::new();
        for m in &models {
            let group: Vec<&RunResult> = task_runs
                .iter()
                .copied()
                .filter(|r| r.model == *m)
                .collect();
            let med = |key: &str| median(group.iter().filter_map(|r| r.num(key)).collect());
            let params = med("params").map(thousands);
            let paper = paper_params(task, m).map(|p| thousands(p as f64));
            let converged = group
                .iter()
                .filter(|r| r.summary.get("converged").and_then(Value::as_bool) == Some(true))
                .count();
            let _ = write!(
                md,
                "| {m} | {} ({}) | {} | {converged}/{} | {} | {} | {} | {} | {} | {} |",
                or_dash(params),
                or_dash(paper),
                group.len(),
                group.len(),
                or_dash(med("converged_at_sequences").map(thousands)),
                or_dash(med("converged_at_seconds").map(minutes)),
                or_dash(med("sequences").map(thousands)),
                or_dash(med("wall_seconds").map(minutes)),
                or_dash(median_and_range(
                    group
                        .iter()
                        .filter_map(|r| r.num("val_bits_per_seq"))
                        .collect(),
                    3
                )),
                paper_result(task, m).unwrap_or("-"),
            );
            if *task == "ngrams" {
                let _ = write!(
                    md,
                    " {} |",
                    or_dash(med("val_optimal").map(|c| format!("{c:.2}")))
                );
            }
            for s in &sizes {
                let at = median_and_range(
                    group
                        .iter()
                        .filter_map(|r| r.eval.as_ref()?.get(s)?.as_f64())
                        .collect(),
                    2,
                );
                let _ = write!(md, " {} |", or_dash(at));
            }
            md.push('\n');
            series.push(curve_series(m, &group, above_optimum));
        }
        if series.iter().any(|s| !s.points.is_empty()) {
            let (title, y_label) = if above_optimum {
                (
                    "validation cost above the Bayes optimum",
                    "bits per sequence above it",
                )
            } else {
                ("validation cost", "bits per sequence")
            };
            let mut chart = LineChart::new(format!("{task}: {title}"), "sequences seen", y_label);
            chart.log_y = above_optimum;
            chart.series = series;
            let name = format!("{task}-curves.svg");
            chart.save_svg(&figures.join(&name))?;
            let _ = writeln!(md, "\n![{task} learning curves](figures/{name})");
        }
        for m in &models {
            if let Some(r) = task_runs
                .iter()
                .find(|r| r.model == *m && r.dir.join(FIGURE).exists())
            {
                let name = format!("{task}-{m}-weights.png");
                std::fs::copy(r.dir.join(FIGURE), figures.join(&name))
                    .map_err(io(&figures.join(&name)))?;
                let _ = writeln!(md, "\n{m}, one long sequence: inputs, targets, outputs, write and read weightings.\n\n![{task} {m} weightings](figures/{name})");
            }
        }
    }
    if !unfinished.is_empty() {
        md.push_str("\n## Runs without a summary\n\nThese failed or were interrupted; `cargo xtask train-all`, or submitting the SLURM script again, resumes them.\n\n");
        for d in &unfinished {
            let _ = writeln!(md, "- `{}`", d.strip_prefix(out).unwrap_or(d).display());
        }
    }
    let path = out.join("REPORT.md");
    std::fs::write(&path, md).map_err(io(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(optimum: Option<f64>, curve: Vec<(f64, f64)>) -> RunResult {
        RunResult {
            task: "ngrams".into(),
            model: "lstm-ntm".into(),
            dir: PathBuf::new(),
            summary: serde_json::json!({ "val_optimal": optimum }),
            eval: None,
            curve,
        }
    }

    #[test]
    fn curves_above_the_optimum_subtract_each_runs_optimum_and_skip_runs_without_one() {
        let a = run(Some(130.0), vec![(1000.0, 140.0), (2000.0, 133.0)]);
        let b = run(Some(131.0), vec![(1000.0, 137.0), (2000.0, 132.0)]);
        let c = run(None, vec![(1000.0, 500.0), (2000.0, 500.0)]);
        let s = curve_series("lstm-ntm", &[&a, &b, &c], true);
        assert_eq!(s.points, [(1000.0, 8.0), (2000.0, 2.0)]);
        assert_eq!(s.band.unwrap(), [(1000.0, 6.0, 10.0), (2000.0, 1.0, 3.0)]);
        // Plain costs keep every run.
        let s = curve_series("lstm-ntm", &[&a, &b, &c], false);
        assert_eq!(s.points, [(1000.0, 140.0), (2000.0, 133.0)]);
    }
}
