//! `cargo bench -p ntm-benches`: addressing forward and backward (fused and unfused), one NTM
//! step forward and backward (kernels switched on and off), and a whole training step of the
//! copy configuration at batch 1, 8 and 32. Single-threaded, as the `ntm` command runs by
//! default.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use candle_core::{DType, Device, Var};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ntm::addressing::{address_fused, address_unfused};
use ntm::ModelConfig;
use ntm_benches::{addressing_inputs, uniform};
use ntm_train::{RunConfig, Trainer};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn addressing(c: &mut Criterion) {
    let mut g = c.benchmark_group("addressing");
    for b in [1usize, 32] {
        let (memory, params, previous) = addressing_inputs(b, 1, 128, 20).expect("inputs");
        let memory = Var::from_tensor(&memory).expect("var");
        for (name, f) in [
            ("fused", address_fused as fn(&_, &_, &_) -> _),
            ("unfused", address_unfused),
        ] {
            g.bench_function(BenchmarkId::new(format!("{name}/forward"), b), |bench| {
                bench.iter(|| f(memory.as_tensor(), &params, &previous).expect("forward"))
            });
            g.bench_function(
                BenchmarkId::new(format!("{name}/forward+backward"), b),
                |bench| {
                    bench.iter(|| {
                        let w = f(memory.as_tensor(), &params, &previous).expect("forward");
                        w.sqr()
                            .and_then(|x| x.sum_all())
                            .and_then(|l| l.backward())
                            .expect("backward")
                    })
                },
            );
        }
    }
    g.finish();
}

fn model_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("ntm-step");
    for b in [1usize, 32] {
        for fused in [true, false] {
            // Process-wide; switched back on below.
            ntm::kernels::set_enabled(fused);
            let config = ModelConfig::default();
            let model = config
                .build(9, 8, 0, DType::F32, &Device::Cpu)
                .expect("model");
            let x = uniform(&[1, b, 9], "input").expect("input");
            let path = if fused { "fused" } else { "unfused" };
            g.bench_function(BenchmarkId::new(format!("{path}/forward"), b), |bench| {
                bench.iter(|| model.forward(&x).expect("forward"))
            });
            g.bench_function(
                BenchmarkId::new(format!("{path}/forward+backward"), b),
                |bench| {
                    bench.iter(|| {
                        model
                            .forward(&x)
                            .and_then(|y| Ok(y.sum_all()?.backward()?))
                            .expect("step")
                    })
                },
            );
        }
    }
    ntm::kernels::set_enabled(true);
    g.finish();
}

fn training_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("train-copy-length-10");
    for b in [1usize, 8, 32] {
        let sets: Vec<String> = [
            format!("train.batch_size={b}"),
            "task.min_length=10".into(),
            "task.max_length=10".into(),
            "train.val_sequences=1".into(),
            // The paper's memory, which copy's LSTM NTM is evaluated with (it trains on 32 rows).
            "model.memory.rows=128".into(),
        ]
        .into();
        let config =
            RunConfig::resolve(Some("copy"), Some("lstm-ntm"), None, &sets).expect("config");
        let mut trainer = Trainer::new(config, &Device::Cpu).expect("trainer");
        g.throughput(Throughput::Elements(b as u64));
        g.bench_function(BenchmarkId::from_parameter(b), |bench| {
            bench.iter(|| trainer.step().expect("step"))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = addressing, model_step, training_step
}
criterion_main!(benches);
