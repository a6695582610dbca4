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

/// Rows `[heads, N]` of batch element 0 at every step, one panel per head.
fn weightings(kind: &str, per_step: &[Tensor]) -> candle_core::Result<Vec<Panel>> {
    let steps = per_step.len();
    let Some(first) = per_step.first() else {
        return Ok(Vec::new());
    };
    let (_, heads, rows) = first.dims3()?;
    let data: Vec<Vec<f32>> = per_step
        .iter()
        .map(|w| w.get(0)?.flatten_all()?.to_vec1())
        .collect::<candle_core::Result<_>>()?;
    Ok((0..heads)
        .map(|h| {
            let mut values = vec![0f32; rows * steps];
            for (t, w) in data.iter().enumerate() {
                for i in 0..rows {
                    values[i * steps + t] = w[h * rows + i];
                }
            }
            Panel::new(format!("{kind} weightings, head {h}"), rows, steps, values)
                .with_range(0.0, 1.0)
        })
        .collect())
}

/// Inputs, targets and outputs of the sequence, then every head's write and read weightings.
pub fn sequence_figure(
    batch: &Batch,
    probs: &Tensor,
    traces: &[MemoryTrace],
    title: &str,
) -> super::Result<Figure> {
    let (steps, _, width) = probs.dims3()?;
    let outputs = Sequence::from_vec(steps, 1, width, probs.flatten_all()?.to_vec1()?)?;
    let mut panels = vec![
        channels(&format!("{title}: inputs"), &batch.inputs, None),
        channels("targets", &batch.targets, Some(&batch.mask)),
        channels("outputs", &outputs, Some(&batch.mask)),
    ];
    let writes: Vec<Tensor> = traces.iter().map(|t| t.write_weights.clone()).collect();
    let reads: Vec<Tensor> = traces.iter().map(|t| t.read_weights.clone()).collect();
    panels.extend(weightings("write", &writes)?);
    panels.extend(weightings("read", &reads)?);
    Ok(Figure::new(panels))
}
