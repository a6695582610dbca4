//! `ntm bench`: training throughput of a standard configuration.

use std::time::Instant;

use candle_core::Device;
use ntm_train::{RunConfig, Trainer};

/// Arguments of `ntm bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// The task whose default config is measured, at the memory rows the model is evaluated
    /// with (`eval.rows`, where its config sets them).
    #[arg(long, default_value = "copy")]
    task: String,
    /// A model name, as for `ntm train` (ff-ntm, lstm-ntm, gru-ntm, lstm, ...).
    #[arg(long, default_value = "lstm-ntm")]
    model: String,
    /// Sequences per update.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Seconds to measure, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Updates run before measuring.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Override one value of the config, as for `ntm train`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Instead of throughput, measure how one forward and backward pass grows with the memory's
    /// rows and with the sequence length: time per step and bytes held for the backward pass.
    #[arg(long)]
    scaling: bool,
    /// Memory rows of the scaling sweep (at length 20).
    #[arg(long, value_delimiter = ',', default_value = "128,512,2048,8192")]
    rows: Vec<usize>,
    /// Sequence lengths of the scaling sweep (at 128 rows).
    #[arg(long, value_delimiter = ',', default_value = "20,40,80,160,320")]
    lengths: Vec<usize>,
    /// Folder for the scaling sweep's figures (`scaling-rows.svg`, `scaling-length.svg`).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// Trains for `args.seconds` and reports sequences per second and milliseconds per time step.
pub fn run(args: BenchArgs, dev: &Device, threads: usize, limit: f64) -> super::Result<()> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        return Err(format!(
            "--seconds {}: expected a positive number of seconds",
            args.seconds
        )
        .into());
    }
    if args.scaling {
        return scaling(&args, dev, limit);
    }
    let mut sets = args.sets.clone();
    sets.push(format!("train.batch_size={}", args.batch));
    sets.push("train.val_sequences=1".into());
    let mut config = RunConfig::resolve(Some(&args.task), Some(&args.model), None, &sets)?;
    // Measure the model at the memory it is evaluated with, the paper's, where peers' figures
    // are measured too: copy's and repeat copy's LSTM NTMs train on fewer rows (their
    // experiment files say why). A `--set model.memory.rows` still wins.
    if let Some(rows) = config.eval.rows {
        sets.insert(0, format!("model.memory.rows={rows}"));
        config = RunConfig::resolve(Some(&args.task), Some(&args.model), None, &sets)?;
    }
    let rows = config
        .model
        .as_ref()
        .and_then(ntm_train::config::memory_rows);
    let task = ntm_train::Registry::default().tasks.build(&config.task)?;
    ntm_train::footprint::training(&config, task.as_ref())
        .check(limit)
        .map_err(super::with_flag)?;
    // Threads in use: the parts of a batch run in parallel, a whole batch on one thread.
    let threads = threads.min(config.train.shards).max(1);
    let mut trainer = Trainer::new(config, dev)?;
    trainer.set_threads(threads);
    for _ in 0..args.warmup {
        trainer.step()?;
    }
    let start = Instant::now();
    let (mut updates, mut sequences, mut time_steps) = (0u64, 0u64, 0u64);
    while start.elapsed().as_secs_f64() < args.seconds || updates == 0 {
        let s = trainer.step()?;
        updates += 1;
        sequences += args.batch as u64;
        time_steps += s.time_steps as u64;
    }
    let wall = start.elapsed().as_secs_f64();
    let seq_per_s = sequences as f64 / wall;
    // One time step of one batch: forward and backward through every layer.
    let ms_per_step = wall * 1e3 / time_steps as f64;
    if args.json {
        let out = serde_json::json!({
            "task": args.task,
            "model": args.model,
            "params": trainer.model().param_count(),
            "rows": rows,
            "batch": args.batch,
            "threads": threads,
            "seconds": wall,
            "updates": updates,
            "seq_per_s": seq_per_s,
            "ms_per_step": ms_per_step,
            "mean_time_steps": time_steps as f64 / updates as f64,
        });
        println!("{out}");
    } else {
        println!(
            "{} {} batch {} threads {}: {seq_per_s:.1} sequences/s, {ms_per_step:.3} ms per time step ({updates} updates in {wall:.1} s)",
            args.task, args.model, args.batch, threads
        );
    }
    Ok(())
}

/// One point of the scaling sweep.
struct Point {
    rows: usize,
    length: usize,
    time_steps: usize,
    /// Median milliseconds of a forward and backward pass, per time step.
    ms_per_step: f64,
    /// Bytes allocated by the forward pass and still held when the backward pass starts.
    held: f64,
}

/// Forward and backward passes of `args.model` on copy at `rows` x `length`, `args.batch`
/// sequences: the median time over a few passes, and the bytes the forward pass leaves held.
fn measure(
    args: &BenchArgs,
    dev: &Device,
    limit: f64,
    rows: usize,
    length: usize,
) -> super::Result<Point> {
    use ntm_tasks::Size;
    use std::sync::atomic::Ordering;
    let mut sets = args.sets.clone();
    sets.push(format!("model.memory.rows={rows}"));
    sets.push(format!("train.batch_size={}", args.batch));
    let config = RunConfig::resolve(Some("copy"), Some(&args.model), None, &sets)?;
    let registry = ntm_train::Registry::default();
    let task = registry.tasks.build(&config.task)?;
    ntm_train::footprint::inference(
        config.model.as_ref(),
        task.as_ref(),
        Some(Size::Length(length)),
        args.batch,
        args.batch,
    )
    .check(limit)
    .map_err(super::with_flag)?;
    let (task, model) = registry.build(&config, dev)?;
    let batch = ntm_train::make_batches(
        task.as_ref(),
        args.batch,
        args.batch,
        Some(Size::Length(length)),
        5,
        "scaling",
    )?
    .remove(0);
    let params = model.params();
    let to = |s| -> super::Result<candle_core::Tensor> {
        Ok(ntm_train::to_tensor(s, params.device())?.to_dtype(params.dtype())?)
    };
    let (inputs, targets, mask) = (to(&batch.inputs)?, to(&batch.targets)?, to(&batch.mask)?);
    let mut times = Vec::new();
    let mut held = 0.0f64;
    for pass in 0..12 {
        let before = super::LIVE_BYTES.load(Ordering::Relaxed);
        super::COUNTING.store(true, Ordering::Relaxed);
        let start = Instant::now();
        let logits = model.forward(&inputs)?;
        let loss = ntm_train::masked_bce(&logits, &targets, &mask)?;
        held = held.max((super::LIVE_BYTES.load(Ordering::Relaxed) - before) as f64);
        let grads = loss.backward()?;
        drop(grads);
        let elapsed = start.elapsed().as_secs_f64();
        super::COUNTING.store(false, Ordering::Relaxed);
        // The first passes warm the allocator and the caches up.
        if pass > 1 {
            times.push(elapsed);
        }
    }
    times.sort_by(f64::total_cmp);
    let steps = batch.steps();
    Ok(Point {
        rows,
        length,
        time_steps: steps,
        ms_per_step: times[times.len() / 2] * 1e3 / steps as f64,
        held,
    })
}

/// `ntm bench --scaling`: time per step and memory held for the backward pass over the
/// memory's rows and over the sequence length, as a table and, with `--out`, two figures of
/// growth relative to the smallest size beside a line of linear growth.
fn scaling(args: &BenchArgs, dev: &Device, limit: f64) -> super::Result<()> {
    if args.rows.is_empty()
        || args.lengths.is_empty()
        || args.rows.contains(&0)
        || args.lengths.contains(&0)
    {
        return Err("--rows and --lengths take positive sizes".into());
    }
    let by_rows = args
        .rows
        .iter()
        .map(|&n| measure(args, dev, limit, n, 20))
        .collect::<super::Result<Vec<_>>>()?;
    let by_length = args
        .lengths
        .iter()
        .map(|&l| measure(args, dev, limit, 128, l))
        .collect::<super::Result<Vec<_>>>()?;
    println!(
        "{} on copy, batch {}: one forward and backward pass",
        args.model, args.batch
    );
    println!(
        "{:>6} {:>7} {:>6} {:>12} {:>14} {:>16}",
        "rows", "length", "steps", "ms per step", "held (MiB)", "held per step (KiB)"
    );
    for p in by_rows.iter().chain(&by_length) {
        println!(
            "{:>6} {:>7} {:>6} {:>12.3} {:>14.2} {:>16.1}",
            p.rows,
            p.length,
            p.time_steps,
            p.ms_per_step,
            p.held / (1 << 20) as f64,
            p.held / 1024.0 / p.time_steps as f64
        );
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let growth = |points: &[Point], x: &dyn Fn(&Point) -> f64, title: &str, x_label: &str| {
            let first = &points[0];
            let mut chart =
                ntm_plot::LineChart::new(title, x_label, "relative to the smallest size");
            let rel = |f: &dyn Fn(&Point) -> f64| -> Vec<(f64, f64)> {
                points
                    .iter()
                    .map(|p| (x(p) / x(first), f(p) / f(first)))
                    .collect()
            };
            chart.series.push(ntm_plot::Series::new(
                "time per sequence",
                rel(&|p| p.ms_per_step * p.time_steps as f64),
            ));
            chart.series.push(ntm_plot::Series::new(
                "memory held for backward",
                rel(&|p| p.held),
            ));
            chart.series.push(ntm_plot::Series::new(
                "linear growth",
                points
                    .iter()
                    .map(|p| (x(p) / x(first), x(p) / x(first)))
                    .collect(),
            ));
            chart
        };
        let rows_chart = growth(
            &by_rows,
            &|p| p.rows as f64,
            &format!("{}: cost against memory rows (length 20)", args.model),
            "rows / smallest rows",
        );
        let length_chart = growth(
            &by_length,
            &|p| p.time_steps as f64,
            &format!("{}: cost against sequence length (128 rows)", args.model),
            "time steps / fewest time steps",
        );
        rows_chart.save_svg(&dir.join("scaling-rows.svg"))?;
        length_chart.save_svg(&dir.join("scaling-length.svg"))?;
        println!("figures in {}", dir.display());
    }
    Ok(())
}
