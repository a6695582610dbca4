//! Writes a sample weighting figure and learning-curve charts with synthetic
//! data: `cargo run -p ntm-plot --example sample_figures -- OUT_DIR`.

use std::path::PathBuf;

use ntm_plot::{Figure, LineChart, Panel, PlotError, Series};

fn main() -> Result<(), PlotError> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&out)?;

    // A copy sequence of 20 random 8-bit vectors, a delimiter, then recall.
    let (len, width, slots) = (20usize, 8usize, 128usize);
    let steps = 2 * len + 2;
    let bit = |t: usize, i: usize| ((t * 31 + i * 17 + t * i) % 7 < 3) as u8 as f32;
    let mut inputs = vec![vec![0f32; width + 1]; steps];
    let mut targets = vec![vec![0f32; width]; steps];
    let mut outputs = vec![vec![0f32; width]; steps];
    for t in 0..len {
        for i in 0..width {
            inputs[t][i] = bit(t, i);
            targets[len + 2 + t - 1][i] = bit(t, i);
            outputs[len + 2 + t - 1][i] = 0.1 + 0.8 * bit(t, i);
        }
    }
    inputs[len][width] = 1.0;
    let focus = |centre: f32| -> Vec<f32> {
        (0..slots)
            .map(|i| (-(i as f32 - centre).powi(2) / 0.8).exp())
            .collect()
    };
    let writes: Vec<Vec<f32>> = (0..steps)
        .map(|t| focus(30.0 + t.min(len) as f32))
        .collect();
    let reads: Vec<Vec<f32>> = (0..steps)
        .map(|t| focus(30.0 + t.saturating_sub(len + 1) as f32))
        .collect();
    let figure = Figure::new(vec![
        Panel::from_time_major("copy, length 20: inputs", &inputs)?.with_range(0.0, 1.0),
        Panel::from_time_major("targets", &targets)?.with_range(0.0, 1.0),
        Panel::from_time_major("outputs", &outputs)?.with_range(0.0, 1.0),
        Panel::from_time_major("write weightings, head 0", &writes)?.with_range(0.0, 1.0),
        Panel::from_time_major("read weightings, head 0", &reads)?.with_range(0.0, 1.0),
    ]);
    figure.save_png(&out.join("weights.png"))?;

    // Median curves with a spread band over seeds, as the sweep report draws them.
    let curve = |rate: f64, floor: f64, x: f64| 80.0 * (-x * rate).exp() + floor;
    let series = |label: &str, rate: f64, floor: f64| {
        let xs: Vec<f64> = (0..=40).map(|i| i as f64 * 2_500.0).collect();
        Series::new(
            label,
            xs.iter().map(|&x| (x, curve(rate, floor, x))).collect(),
        )
        .with_band(
            xs.iter()
                .map(|&x| {
                    (
                        x,
                        curve(rate * 1.3, floor * 0.5, x),
                        curve(rate * 0.75, floor * 2.0, x),
                    )
                })
                .collect(),
        )
    };
    let mut chart = LineChart::new(
        "copy: validation cost",
        "sequences seen",
        "bits per sequence",
    );
    chart.series = vec![
        series("lstm-ntm", 1.2e-4, 0.01),
        series("ff-ntm", 0.6e-4, 0.3),
        Series::new(
            "lstm",
            (0..=40)
                .map(|i| (i as f64 * 2_500.0, curve(0.3e-4, 8.0, i as f64 * 2_500.0)))
                .collect(),
        ),
    ];
    chart.save_svg(&out.join("curves.svg"))?;
    chart.log_y = true;
    chart.save_svg(&out.join("curves-log.svg"))?;
    println!(
        "wrote weights.png, curves.svg and curves-log.svg to {}",
        out.display()
    );
    Ok(())
}
