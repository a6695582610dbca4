//! The paper-style figure of one sequence (Graves et al. 2014, figure 6).

use candle_core::Tensor;
use ntm::memory::MemoryTrace;
use ntm_plot::{Figure, Panel};
use ntm_tasks::{Batch, Sequence};

/// Channels over time of batch element 0 of `seq`, masked by `mask` when given.
fn channels(title: &str, seq: &Sequence, mask: Option<&Sequence>) -> Panel {
    let (steps, width) = (seq.steps, seq.width);
    let mut values = vec![0f32; steps * width];
    for t in 0..steps {
        let keep = mask.map_or(1.0, |m| m.get(t, 0, 0));
        for i in 0..width {
            values[i * steps + t] = seq.get(t, 0, i) * keep;
        }
    }
    Panel::new(title, width, steps, values).with_range(0.0, 1.0)
}

/// Rows `[heads, N]` of batch element 0 at every step, one panel per head: "write weightings"
/// for one head, short titles ("write head 3") for several, as their panels stand side by side.
fn weightings(kind: &str, per_step: &[Tensor]) -> candle_core::Result<Vec<Panel>> {
    over_time(per_step, |h, heads| match heads {
        1 => format!("{kind} weightings"),
        _ => format!("{kind} head {h}"),
    })
}

/// `[B, heads, X]` (or `[B, X]`, one head) per step: batch element 0 over time, one panel per
/// head, titled `title(head, heads)`.
fn over_time(
    per_step: &[Tensor],
    title: impl Fn(usize, usize) -> String,
) -> candle_core::Result<Vec<Panel>> {
    let per_step: Vec<Tensor> = per_step
        .iter()
        .map(|t| {
            if t.rank() == 2 {
                t.unsqueeze(1)
            } else {
                Ok(t.clone())
            }
        })
        .collect::<candle_core::Result<_>>()?;
    let steps = per_step.len();
    let Some(first) = per_step.first() else {
        return Ok(Vec::new());
    };
    let (_, heads, rows) = first.dims3()?;
    let data: Vec<Vec<f32>> = per_step
        .iter()
        .map(|w| {
            w.get(0)?
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1()
        })
        .collect::<candle_core::Result<_>>()?;
    Ok((0..heads)
        .map(|h| {
            let mut values = vec![0f32; rows * steps];
            for (t, w) in data.iter().enumerate() {
                for i in 0..rows {
                    values[i * steps + t] = w[h * rows + i];
                }
            }
            Panel::new(title(h, heads), rows, steps, values).with_range(0.0, 1.0)
        })
        .collect())
}

/// `[B, heads, N, N]` after the last step: batch element 0's matrix of each head, one panel each.
fn last_matrices(title: &str, last: &Tensor) -> candle_core::Result<Vec<Panel>> {
    let (_, heads, rows, cols) = last.dims4()?;
    let values: Vec<f32> = last
        .get(0)?
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    Ok(values
        .chunks(rows * cols)
        .enumerate()
        .map(|(h, m)| {
            let title = if heads == 1 {
                format!("{title} after the last step")
            } else {
                format!("{title} after the last step, head {h}")
            };
            Panel::new(title, rows, cols, m.to_vec()).with_range(0.0, 1.0)
        })
        .collect())
}

/// Inputs, targets and outputs of the sequence, each in a row of its own; then a row of the
/// write heads' weightings and one of the read heads', a panel per head side by side; then a
/// row for each of the memory's further signals (`MemoryTrace::extra`, each in `[0, 1]`): those
/// of one or more vectors per step over time (a DNC's usage, allocation and read modes), square
/// matrices (a DNC's links) as they are after the last step.
pub fn sequence_figure(
    batch: &Batch,
    probs: &Tensor,
    traces: &[MemoryTrace],
    title: &str,
) -> super::Result<Figure> {
    let (steps, _, width) = probs.dims3()?;
    let outputs = Sequence::from_vec(steps, 1, width, probs.flatten_all()?.to_vec1()?)?;
    let mut rows = vec![
        vec![channels(&format!("{title}: inputs"), &batch.inputs, None)],
        vec![channels("targets", &batch.targets, Some(&batch.mask))],
        vec![channels("outputs", &outputs, Some(&batch.mask))],
    ];
    let writes: Vec<Tensor> = traces.iter().map(|t| t.write_weights.clone()).collect();
    let reads: Vec<Tensor> = traces.iter().map(|t| t.read_weights.clone()).collect();
    rows.push(weightings("write", &writes)?);
    rows.push(weightings("read", &reads)?);
    let names = traces.first().map_or(Vec::new(), |t| {
        t.extra.iter().map(|(name, _)| name.clone()).collect()
    });
    for (k, name) in names.iter().enumerate() {
        let per_step: Vec<Tensor> = traces
            .iter()
            .filter_map(|t| t.extra.get(k).map(|(_, x)| x.clone()))
            .collect();
        match per_step.last().map(Tensor::rank) {
            Some(2 | 3) => rows.push(over_time(&per_step, |h, heads| match heads {
                1 => name.clone(),
                _ => format!("{name}, head {h}"),
            })?),
            Some(4) => rows.push(last_matrices(name, &per_step[per_step.len() - 1])?),
            _ => {}
        }
    }
    let rows = rows
        .into_iter()
        .flat_map(|row| {
            let per_row = side_by_side(row.iter().map(|p| p.cols).max().unwrap_or(0));
            let mut row = row.into_iter().peekable();
            std::iter::from_fn(move || {
                row.peek()?;
                Some(row.by_ref().take(per_row).collect::<Vec<_>>())
            })
        })
        .collect();
    Ok(Figure::grid(rows))
}

/// How many panels `cols` cells wide fit side by side in a figure at three pixels per cell, with
/// room beside each for its labels and for a title and key wider than the cells (at least one).
fn side_by_side(cols: usize) -> usize {
    (ntm_plot::MAX_WIDTH / (3 * cols + 360)).max(1)
}
