//! Where a trained priority-sort model writes each vector: for every write head, how the row
//! its weighting peaks at while it reads an input depends on that input's priority (the
//! analysis behind figure 17 of Graves et al. 2014).
//!
//! `cargo run --release -p ntm-train --example priority_writes -- RUN_DIR [SEQUENCES]` loads a
//! run written by `ntm train --task priority-sort`, runs it on `SEQUENCES` fresh sequences (30
//! by default) and prints, per write head, Spearman's rank correlation between priority and
//! peak row, then the peak rows of the head that follows priority most closely, by priority.
//! Rows wrap around, so each head's rows are read from the widest gap between the rows it
//! used: a head that writes at rows 120 to 127 and on through 0 to 15 counts as contiguous.

use std::path::PathBuf;

use candle_core::Device;
use ntm_train::{load_run, trace};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: priority_writes RUN_DIR [SEQUENCES]")?,
    );
    let sequences: u64 = args.next().map_or(Ok(30), |s| s.parse())?;
    let run = load_run(&dir, &Device::Cpu)?;
    if run.task.name() != "priority-sort" {
        return Err(format!(
            "{} holds a {} run, not priority sort",
            dir.display(),
            run.task.name()
        )
        .into());
    }
    // Per write head: (priority, peak row) of every input step.
    let mut heads: Vec<Vec<(f32, usize)>> = Vec::new();
    let mut rows = 0;
    for seed in 0..sequences {
        let (batch, _, traces) = trace(run.model.as_ref(), run.task.as_ref(), None, seed)?;
        let width = batch.inputs.width;
        // Input steps carry a priority; the delimiter step ends them.
        let inputs = (0..batch.inputs.steps)
            .take_while(|&t| batch.inputs.get(t, 0, width - 1) == 0.0)
            .count();
        for (t, step) in traces.iter().take(inputs).enumerate() {
            let priority = batch.inputs.get(t, 0, width - 2);
            let weights: Vec<Vec<f32>> = step.write_weights.get(0)?.to_vec2()?;
            heads.resize(weights.len(), Vec::new());
            rows = weights.first().map_or(0, Vec::len);
            for (h, w) in weights.iter().enumerate() {
                heads[h].push((priority, peak(w)));
            }
        }
    }
    if heads.is_empty() {
        return Err("the model has no write heads".into());
    }
    let mut best = (0, 0.0);
    for (h, pairs) in heads.iter().enumerate() {
        let cut = widest_gap_end(pairs.iter().map(|p| p.1), rows);
        let unwrapped: Vec<f32> = pairs
            .iter()
            .map(|p| ((p.1 + rows - cut) % rows) as f32)
            .collect();
        let priorities: Vec<f32> = pairs.iter().map(|p| p.0).collect();
        let rho = spearman(&priorities, &unwrapped);
        println!("write head {h}: Spearman(priority, peak row) = {rho:+.3}");
        if rho.abs() > f32::abs(best.1) {
            best = (h, rho);
        }
    }
    let mut pairs = heads[best.0].clone();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let every = (pairs.len() / 16).max(1);
    println!(
        "\nwrite head {}, by priority (every {every}th input):",
        best.0
    );
    for (priority, row) in pairs.iter().step_by(every) {
        println!("  priority {priority:+.2}: row {row}");
    }
    Ok(())
}

/// The row of a weighting's largest entry.
fn peak(w: &[f32]) -> usize {
    (0..w.len()).fold(0, |best, i| if w[i] > w[best] { i } else { best })
}

/// The row just past the longest circular run of rows that no peak falls on.
fn widest_gap_end(peaks: impl Iterator<Item = usize>, rows: usize) -> usize {
    let mut used = vec![false; rows];
    peaks.for_each(|r| used[r] = true);
    let (mut best, mut best_len, mut len) = (0, 0, 0);
    // Two laps, so that a gap across row 0 counts whole.
    for i in 0..2 * rows {
        if used[i % rows] {
            if len > best_len {
                (best, best_len) = (i % rows, len);
            }
            len = 0;
        } else {
            len += 1;
        }
    }
    best
}

/// Spearman's rank correlation (ties ranked in input order).
fn spearman(a: &[f32], b: &[f32]) -> f32 {
    let rank = |v: &[f32]| {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0f32; v.len()];
        for (k, &i) in order.iter().enumerate() {
            r[i] = k as f32;
        }
        r
    };
    let (ra, rb) = (rank(a), rank(b));
    let mean = (a.len() as f32 - 1.0) / 2.0;
    let cov: f32 = ra
        .iter()
        .zip(&rb)
        .map(|(x, y)| (x - mean) * (y - mean))
        .sum();
    let var: f32 = ra.iter().map(|x| (x - mean) * (x - mean)).sum();
    cov / var
}
