//! `ntm bench`: training throughput of a standard configuration.

use std::time::Instant;

use candle_core::Device;
use ntm_train::{RunConfig, Trainer};

/// Arguments of `ntm bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// The task whose default config is measured.
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
    let mut sets = args.sets.clone();
    sets.push(format!("train.batch_size={}", args.batch));
    sets.push("train.val_sequences=1".into());
    let config = RunConfig::resolve(Some(&args.task), Some(&args.model), None, &sets)?;
    let task = ntm_train::Registry::default().tasks.build(&config.task)?;
    ntm_train::footprint::training(&config, task.as_ref()).check(limit)?;
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
