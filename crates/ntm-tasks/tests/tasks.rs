//! Behaviour of the five tasks.

use ntm_tasks::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

const TASK_NAMES: [&str; 6] = [
    "copy",
    "repeat-copy",
    "associative-recall",
    "ngrams",
    "priority-sort",
    "memory-reuse",
];

fn all_tasks() -> Vec<Box<dyn Task>> {
    TASK_NAMES
        .iter()
        .map(|n| TaskConfig::default_for(n).unwrap().build().unwrap())
        .collect()
}

fn is_bit(v: f32) -> bool {
    v == 0.0 || v == 1.0
}

/// Masked-out steps have zero targets; the mask is 0/1 and equal across the batch.
fn check_common(task: &dyn Task, batch: &Batch, batch_size: usize) {
    let t = batch.steps();
    assert_eq!(batch.batch_size(), batch_size);
    assert_eq!(batch.inputs.shape(), (t, batch_size, task.input_size()));
    assert_eq!(batch.targets.shape(), (t, batch_size, task.output_size()));
    assert_eq!(batch.mask.shape(), (t, batch_size, 1));
    for s in 0..t {
        for b in 0..batch_size {
            let m = batch.mask.get(s, b, 0);
            assert!(is_bit(m));
            assert_eq!(m, batch.mask.get(s, 0, 0));
            if m == 0.0 {
                assert!(batch.targets.row(s, b).iter().all(|&v| v == 0.0));
            }
        }
    }
}

#[test]
fn copy_target_is_input_and_mask_is_output_phase() {
    let task = CopyTask::new(CopyConfig::default()).unwrap();
    assert_eq!((task.input_size(), task.output_size()), (9, 8));
    let mut r = rng(1);
    let mut lengths = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let batch = task.batch(3, None, &mut r).unwrap();
        check_common(&task, &batch, 3);
        let t = batch.steps();
        assert_eq!(t % 2, 1);
        let l = (t - 1) / 2;
        assert!((1..=20).contains(&l));
        lengths.insert(l);
        assert_eq!(batch.scored_steps(), l);
        for b in 0..3 {
            for s in 0..t {
                let input = batch.inputs.row(s, b);
                let mask = batch.mask.get(s, b, 0);
                if s < l {
                    assert!(input[..8].iter().all(|&v| is_bit(v)));
                    assert_eq!(input[8], 0.0);
                    assert_eq!(mask, 0.0);
                } else if s == l {
                    assert_eq!(input, &[0., 0., 0., 0., 0., 0., 0., 0., 1.]);
                    assert_eq!(mask, 0.0);
                } else {
                    assert!(input.iter().all(|&v| v == 0.0));
                    assert_eq!(mask, 1.0);
                    assert_eq!(
                        batch.targets.row(s, b),
                        &batch.inputs.row(s - l - 1, b)[..8]
                    );
                }
            }
        }
    }
    assert_eq!(lengths.len(), 20, "all training lengths drawn");
    let long = task.batch(2, Some(Size::Length(120)), &mut r).unwrap();
    assert_eq!(long.steps(), 241);
}

#[test]
fn copy_bits_are_balanced() {
    let task = CopyTask::new(CopyConfig::default()).unwrap();
    let batch = task.batch(64, Some(Size::Length(50)), &mut rng(2)).unwrap();
    let data: Vec<f32> = (0..50)
        .flat_map(|t| (0..64).flat_map(move |b| (0..8).map(move |i| (t, b, i))))
        .map(|(t, b, i)| batch.inputs.get(t, b, i))
        .collect();
    let mean = data.iter().sum::<f32>() / data.len() as f32;
    assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
}

#[test]
fn repeat_copy_target_is_repeated_sequence_then_end_marker() {
    let task = RepeatCopyTask::new(RepeatCopyConfig::default()).unwrap();
    assert_eq!((task.input_size(), task.output_size()), (10, 9));
    let mut r = rng(3);
    for size in [
        None,
        Some(Size::Repeat {
            length: 3,
            repeats: 4,
        }),
        Some(Size::Length(7)),
    ] {
        for _ in 0..50 {
            let batch = task.batch(2, size, &mut r).unwrap();
            check_common(&task, &batch, 2);
            // Find the delimiter step to recover L, then R from the step count.
            let l = (0..batch.steps())
                .find(|&s| batch.inputs.get(s, 0, 8) == 1.0)
                .unwrap();
            let out = batch.steps() - l - 1;
            assert_eq!((out - 1) % l, 0);
            let reps = (out - 1) / l;
            match size {
                Some(Size::Repeat { length, repeats }) => assert_eq!((l, reps), (length, repeats)),
                Some(Size::Length(length)) => assert_eq!(l, length),
                None => assert!((1..=10).contains(&l)),
            }
            assert!((1..=10).contains(&reps) || size.is_some());
            assert_eq!(batch.scored_steps(), reps * l + 1);
            for b in 0..2 {
                let delim = batch.inputs.row(l, b);
                assert!(delim[..8].iter().all(|&v| v == 0.0));
                assert_eq!(delim[8], 1.0);
                assert_eq!(delim[9], task.normalised_repeats(reps));
                for s in 0..l {
                    assert_eq!(batch.inputs.get(s, b, 8), 0.0);
                    assert_eq!(batch.inputs.get(s, b, 9), 0.0);
                    assert_eq!(batch.mask.get(s, b, 0), 0.0);
                }
                for k in 0..reps * l {
                    let s = l + 1 + k;
                    assert!(batch.inputs.row(s, b).iter().all(|&v| v == 0.0));
                    assert_eq!(batch.mask.get(s, b, 0), 1.0);
                    let target = batch.targets.row(s, b);
                    assert_eq!(&target[..8], &batch.inputs.row(k % l, b)[..8]);
                    assert_eq!(target[8], 0.0);
                }
                let last = batch.steps() - 1;
                assert_eq!(
                    batch.targets.row(last, b),
                    &[0., 0., 0., 0., 0., 0., 0., 0., 1.]
                );
                assert_eq!(batch.mask.get(last, b, 0), 1.0);
            }
        }
    }
}

#[test]
fn repeat_channel_is_standardised_over_training_range() {
    for (min, max) in [(1, 10), (3, 4), (2, 17)] {
        let task = RepeatCopyTask::new(RepeatCopyConfig {
            min_repeats: min,
            max_repeats: max,
            ..RepeatCopyConfig::default()
        })
        .unwrap();
        let values: Vec<f64> = (min..=max)
            .map(|r| f64::from(task.normalised_repeats(r)))
            .collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 1e-6, "mean {mean}");
        assert!((var - 1.0).abs() < 1e-5, "variance {var}");
    }
    // A single-value range: centred, std 1.
    let task = RepeatCopyTask::new(RepeatCopyConfig {
        min_repeats: 5,
        max_repeats: 5,
        ..RepeatCopyConfig::default()
    })
    .unwrap();
    assert_eq!(task.normalised_repeats(5), 0.0);
    assert_eq!(task.normalised_repeats(7), 2.0);
}

#[test]
fn recall_target_is_item_after_query_and_query_is_never_last() {
    let task = AssociativeRecallTask::new(AssociativeRecallConfig::default()).unwrap();
    assert_eq!((task.input_size(), task.output_size()), (8, 6));
    let (w, il) = (6, 3);
    let mut query_positions = std::collections::BTreeSet::new();
    for seed in 0..300 {
        let mut r = rng(seed);
        let batch = task.batch(4, None, &mut r).unwrap();
        check_common(&task, &batch, 4);
        let k = (batch.steps() - 2 * il - 2) / (il + 1);
        assert_eq!(k * (il + 1) + 2 * il + 2, batch.steps());
        assert!((2..=6).contains(&k));
        let q0 = k * (il + 1);
        let out = q0 + il + 2;
        assert_eq!(batch.scored_steps(), il);
        for b in 0..4 {
            let item = |idx: usize| -> Vec<f32> {
                (0..il)
                    .flat_map(|j| batch.inputs.row(idx * (il + 1) + 1 + j, b)[..w].to_vec())
                    .collect()
            };
            for idx in 0..k {
                assert_eq!(batch.inputs.get(idx * (il + 1), b, w), 1.0);
            }
            assert_eq!(batch.inputs.get(q0, b, w + 1), 1.0);
            assert_eq!(batch.inputs.get(q0 + il + 1, b, w + 1), 1.0);
            let query: Vec<f32> = (0..il)
                .flat_map(|j| batch.inputs.row(q0 + 1 + j, b)[..w].to_vec())
                .collect();
            // The query is one of the items other than the last (items are distinct with
            // overwhelming probability; pick the first match).
            let pos = (0..k)
                .find(|&i| item(i) == query)
                .expect("query is an item");
            assert!(pos < k - 1, "query must never be the last item");
            query_positions.insert(pos);
            let target: Vec<f32> = (0..il)
                .flat_map(|j| batch.targets.row(out + j, b).to_vec())
                .collect();
            assert_eq!(target, item(pos + 1));
            for s in out..out + il {
                assert!(batch.inputs.row(s, b).iter().all(|&v| v == 0.0));
                assert_eq!(batch.mask.get(s, b, 0), 1.0);
            }
        }
    }
    assert_eq!(query_positions.len(), 5, "queries cover items 0..=4");
    let big = task.batch(1, Some(Size::Length(15)), &mut rng(0)).unwrap();
    assert_eq!(big.steps(), 15 * 4 + 8);
}

#[test]
fn priority_sort_target_is_top_vectors_by_priority() {
    let task = PrioritySortTask::new(PrioritySortConfig::default()).unwrap();
    assert_eq!((task.input_size(), task.output_size()), (10, 8));
    let mut r = rng(5);
    for size in [None, Some(Size::Length(30))] {
        for _ in 0..30 {
            let batch = task.batch(3, size, &mut r).unwrap();
            check_common(&task, &batch, 3);
            let n = size.map_or(20, |s| s.length());
            assert_eq!(batch.steps(), n + 1 + 16);
            assert_eq!(batch.scored_steps(), 16);
            for b in 0..3 {
                let mut items: Vec<(f32, Vec<f32>)> = (0..n)
                    .map(|s| {
                        let row = batch.inputs.row(s, b);
                        assert!((-1.0..=1.0).contains(&row[8]));
                        assert_eq!(row[9], 0.0);
                        (row[8], row[..8].to_vec())
                    })
                    .collect();
                // Independent recomputation: selection of the maximum, 16 times.
                let mut expected = Vec::new();
                for _ in 0..16 {
                    let mut best = 0;
                    for i in 1..items.len() {
                        if items[i].0 > items[best].0 {
                            best = i;
                        }
                    }
                    expected.push(items.remove(best).1);
                }
                let delim = batch.inputs.row(n, b);
                assert_eq!(delim[9], 1.0);
                assert!(delim[..9].iter().all(|&v| v == 0.0));
                for (j, e) in expected.iter().enumerate() {
                    assert_eq!(batch.targets.row(n + 1 + j, b), &e[..]);
                    assert!(batch.inputs.row(n + 1 + j, b).iter().all(|&v| v == 0.0));
                }
            }
        }
    }
}

#[test]
fn priorities_spread_over_the_interval() {
    let task = PrioritySortTask::new(PrioritySortConfig::default()).unwrap();
    let batch = task.batch(100, None, &mut rng(6)).unwrap();
    let ps: Vec<f32> = (0..20)
        .flat_map(|s| (0..100).map(move |b| (s, b)))
        .map(|(s, b)| batch.inputs.get(s, b, 8))
        .collect();
    let mean = ps.iter().sum::<f32>() / ps.len() as f32;
    assert!(mean.abs() < 0.06, "mean {mean}");
    assert!(ps.iter().any(|&p| p < -0.9) && ps.iter().any(|&p| p > 0.9));
}

fn hand_batch(sequences: &[&[u8]]) -> Batch {
    let steps = sequences[0].len() - 1;
    let n = sequences.len();
    let mut inputs = Sequence::zeros(steps, n, 1);
    let mut targets = Sequence::zeros(steps, n, 1);
    let mut mask = Sequence::zeros(steps, n, 1);
    for (b, bits) in sequences.iter().enumerate() {
        for t in 0..steps {
            inputs.set(t, b, 0, f32::from(bits[t]));
            targets.set(t, b, 0, f32::from(bits[t + 1]));
            mask.set(t, b, 0, 1.0);
        }
    }
    Batch {
        inputs,
        targets,
        mask,
    }
}

#[test]
fn ngrams_optimal_cost_matches_hand_count_order_3() {
    // Order 3: the context is the previous 2 bits.
    let task = NgramsTask::new(NgramsConfig {
        order: 3,
        length: 10,
    })
    .unwrap();
    let bits: &[u8] = &[0, 1, 1, 0, 1, 1, 0, 1, 0, 0];
    // x1: no full context -> 1 bit.
    // x2 (ctx 01, unseen) 1 bit; x3 (ctx 11, unseen) 1 bit; x4 (ctx 10, unseen) 1 bit.
    // x5 = 1, ctx 01 had N1 = 1: p = 1.5 / 2.
    // x6 = 0, ctx 11 had N0 = 1: p = 1.5 / 2.
    // x7 = 1, ctx 10 had N1 = 1: p = 1.5 / 2.
    // x8 = 0, ctx 01 had N1 = 2: p = 0.5 / 3.
    // x9 = 0, ctx 10 had N1 = 2: p = 0.5 / 3.
    let expected = 4.0 - 3.0 * (0.75f64).log2() - 2.0 * (0.5f64 / 3.0).log2();
    assert!((expected - 10.415_037_5).abs() < 1e-6);
    let batch = hand_batch(&[bits]);
    let got = task.optimal_cost(&batch).unwrap();
    assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
    assert!((ngram_optimal_bits(bits, 3).unwrap() - expected).abs() < 1e-9);

    // Masking a step removes its term but keeps its count: drop x5 (t = 4).
    let mut masked = batch.clone();
    masked.mask.set(4, 0, 0, 0.0);
    let got = task.optimal_cost(&masked).unwrap();
    assert!((got - (expected + (0.75f64).log2())).abs() < 1e-9);
}

#[test]
fn ngrams_optimal_cost_matches_hand_count_order_6_and_averages() {
    let task = NgramsTask::new(NgramsConfig::default()).unwrap();
    let zeros: &[u8] = &[0; 10];
    // x1..x4: 1 bit each; x5: ctx 00000 unseen, 1 bit; then p0 = 1.5/2, 2.5/3, 3.5/4, 4.5/5.
    let a = 5.0
        - (1.5f64 / 2.0).log2()
        - (2.5f64 / 3.0).log2()
        - (3.5f64 / 4.0).log2()
        - (4.5f64 / 5.0).log2();
    let alternating: &[u8] = &[1, 0, 1, 0, 1, 0, 1, 0, 1, 0];
    // Contexts 10101 (before x5, x7, x9) and 01010 (before x6, x8).
    // x5 = 0 unseen: 1; x6 = 1 unseen: 1; x7 = 0, N0 = 1: 1.5/2; x8 = 1, N1 = 1: 1.5/2;
    // x9 = 0, N0 = 2: 2.5/3.
    let c = 6.0 - 2.0 * (0.75f64).log2() - (2.5f64 / 3.0).log2();
    let got = task
        .optimal_cost(&hand_batch(&[zeros, alternating]))
        .unwrap();
    assert!((got - (a + c) / 2.0).abs() < 1e-9, "{got}");
    // Batches of the wrong shape have no optimal cost; other tasks have none.
    let copy = CopyTask::new(CopyConfig::default()).unwrap();
    let copy_batch = copy.batch(2, None, &mut rng(0)).unwrap();
    assert_eq!(task.optimal_cost(&copy_batch), None);
    assert_eq!(copy.optimal_cost(&copy_batch), None);
}

#[test]
fn ngram_sequences_follow_their_table() {
    let mut r = rng(8);
    let table = NgramTable::sample(6, &mut r).unwrap();
    assert_eq!(table.probs().len(), 32);
    let bits = table.generate(400_000, &mut r);
    let mut counts = [[0u32; 2]; 32];
    for i in 5..bits.len() {
        let ctx = bits[i - 5..i]
            .iter()
            .fold(0usize, |c, &x| (c << 1) | usize::from(x));
        counts[ctx][usize::from(bits[i])] += 1;
    }
    let mut checked = 0;
    for (ctx, [n0, n1]) in counts.iter().enumerate() {
        let n = n0 + n1;
        if n >= 2000 {
            let freq = f64::from(*n1) / f64::from(n);
            let p = table.prob_one(ctx).unwrap();
            assert!((freq - p).abs() < 0.04, "context {ctx}: {freq} vs {p}");
            checked += 1;
        }
    }
    assert!(checked >= 16, "only {checked} contexts well sampled");
}

#[test]
fn ngram_batches_are_shifted_sequences_with_paper_optimum() {
    let task = NgramsTask::new(NgramsConfig::default()).unwrap();
    assert_eq!(task.cost_kind(), CostKind::CrossEntropyBits);
    let batch = task.batch(1000, None, &mut rng(9)).unwrap();
    check_common(&task, &batch, 1000);
    assert_eq!(batch.steps(), 199);
    assert_eq!(batch.scored_steps(), 199);
    for b in 0..1000 {
        for t in 0..198 {
            assert!(is_bit(batch.inputs.get(t, b, 0)));
            assert_eq!(batch.inputs.get(t + 1, b, 0), batch.targets.get(t, b, 0));
        }
    }
    // The paper reports an optimum of about 131-132 bits per sequence.
    let opt = task.optimal_cost(&batch).unwrap();
    assert!((126.0..137.0).contains(&opt), "optimal cost {opt}");
    let short = task.batch(2, Some(Size::Length(6)), &mut rng(9)).unwrap();
    assert_eq!(short.steps(), 5);
}

#[test]
fn same_seed_same_batches_different_seed_different() {
    for task in all_tasks() {
        let a = task.batch(4, None, &mut rng(42)).unwrap();
        let b = task.batch(4, None, &mut rng(42)).unwrap();
        assert_eq!(a, b, "{}", task.name());
        // A stream of batches is reproducible too.
        let mut r1 = rng(7);
        let mut r2 = rng(7);
        for _ in 0..5 {
            assert_eq!(
                task.batch(2, None, &mut r1).unwrap(),
                task.batch(2, None, &mut r2).unwrap()
            );
        }
        let c = task.batch(4, None, &mut rng(43)).unwrap();
        assert_ne!(a, c, "{}", task.name());
    }
}

#[test]
fn names_and_cost_kinds() {
    let tasks = all_tasks();
    let names: Vec<&str> = tasks.iter().map(|t| t.name()).collect();
    assert_eq!(names, TASK_NAMES);
    assert_eq!(TaskRegistry::default().names(), TASK_NAMES);
    for t in &tasks {
        let expected = if t.name() == "ngrams" {
            CostKind::CrossEntropyBits
        } else {
            CostKind::BitErrors
        };
        assert_eq!(t.cost_kind(), expected);
    }
    for name in TASK_NAMES {
        assert_eq!(TaskConfig::default_for(name).unwrap().name(), name);
    }
}

#[test]
fn size_parsing_and_display() {
    assert_eq!("40".parse::<Size>().unwrap(), Size::Length(40));
    assert_eq!(
        "10x20".parse::<Size>().unwrap(),
        Size::Repeat {
            length: 10,
            repeats: 20
        }
    );
    assert_eq!(
        "20X10".parse::<Size>().unwrap(),
        Size::Repeat {
            length: 20,
            repeats: 10
        }
    );
    assert_eq!(" 7 ".parse::<Size>().unwrap(), Size::Length(7));
    for bad in [
        "", "x", "10x", "x10", "-3", "+3", "1.5", "10x20x30", "ten", "10 20",
    ] {
        let err = bad.parse::<Size>().unwrap_err();
        assert!(matches!(err, TaskError::InvalidSize { .. }), "{bad:?}");
    }
    for s in [
        Size::Length(0),
        Size::Length(120),
        Size::Repeat {
            length: 10,
            repeats: 20,
        },
    ] {
        assert_eq!(s.to_string().parse::<Size>().unwrap(), s);
    }
    assert_eq!(
        Size::Repeat {
            length: 3,
            repeats: 4
        }
        .to_string(),
        "3x4"
    );
}

#[test]
fn invalid_configs_are_rejected() {
    let copy = |min_length, max_length, width| {
        CopyTask::new(CopyConfig {
            width,
            min_length,
            max_length,
        })
    };
    assert!(copy(1, 20, 8).is_ok());
    for (min, max, w) in [(0, 5, 8), (6, 5, 8), (1, 5, 0), (1, 5, usize::MAX)] {
        assert!(matches!(
            copy(min, max, w),
            Err(TaskError::InvalidConfig { task: "copy", .. })
        ));
    }
    let rc = |min_repeats, max_repeats| {
        RepeatCopyTask::new(RepeatCopyConfig {
            min_repeats,
            max_repeats,
            ..Default::default()
        })
    };
    assert!(rc(0, 3).is_err() && rc(4, 3).is_err() && rc(3, 3).is_ok());
    assert!(RepeatCopyTask::new(RepeatCopyConfig {
        min_length: 11,
        ..Default::default()
    })
    .is_err());
    let ar = |min_items, max_items, item_length| {
        AssociativeRecallTask::new(AssociativeRecallConfig {
            min_items,
            max_items,
            item_length,
            ..Default::default()
        })
    };
    assert!(ar(1, 6, 3).is_err() && ar(7, 6, 3).is_err() && ar(2, 6, 0).is_err());
    assert!(ar(2, 2, 1).is_ok());
    let ng = |order, length| NgramsTask::new(NgramsConfig { order, length });
    assert!(ng(0, 10).is_err() && ng(17, 100).is_err() && ng(6, 5).is_err() && ng(1, 1).is_err());
    assert!(ng(1, 2).is_ok() && ng(6, 6).is_ok());
    let ps = |inputs, outputs| {
        PrioritySortTask::new(PrioritySortConfig {
            inputs,
            outputs,
            ..Default::default()
        })
    };
    assert!(ps(15, 16).is_err() && ps(20, 0).is_err() && ps(16, 16).is_ok());
    assert!(NgramTable::new(3, vec![0.5; 3]).is_err());
    assert!(NgramTable::new(3, vec![0.5, 0.5, 1.5, 0.0]).is_err());
    assert!(NgramTable::new(3, vec![0.5; 4]).is_ok());
    let err = TaskConfig::default_for("copy-task").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TaskError::UnknownTask { .. }));
    for name in TASK_NAMES {
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn unsupported_sizes_and_empty_batches_are_errors() {
    let rep = Size::Repeat {
        length: 3,
        repeats: 2,
    };
    let cases: [(&str, Size); 10] = [
        ("copy", Size::Length(0)),
        ("copy", rep),
        ("repeat-copy", Size::Length(0)),
        (
            "repeat-copy",
            Size::Repeat {
                length: 3,
                repeats: 0,
            },
        ),
        ("associative-recall", Size::Length(1)),
        ("associative-recall", rep),
        ("ngrams", Size::Length(5)),
        ("ngrams", rep),
        ("priority-sort", Size::Length(15)),
        ("priority-sort", rep),
    ];
    for (name, size) in cases {
        let task = TaskConfig::default_for(name).unwrap().build().unwrap();
        let err = task.batch(2, Some(size), &mut rng(0)).unwrap_err();
        match err {
            TaskError::UnsupportedSize { task, size: s, .. } => {
                assert_eq!((task, s), (name, size));
            }
            other => panic!("{name} {size}: {other:?}"),
        }
    }
    for task in all_tasks() {
        assert!(matches!(
            task.batch(0, None, &mut rng(0)),
            Err(TaskError::EmptyBatch)
        ));
    }
    // Absurd sizes are errors, not panics or aborts.
    for (name, size) in [
        ("copy", Size::Length(usize::MAX / 2)),
        (
            "repeat-copy",
            Size::Repeat {
                length: 1 << 40,
                repeats: 1 << 40,
            },
        ),
        ("associative-recall", Size::Length(usize::MAX)),
        ("ngrams", Size::Length(usize::MAX)),
        ("priority-sort", Size::Length(usize::MAX)),
    ] {
        let task = TaskConfig::default_for(name).unwrap().build().unwrap();
        let err = task.batch(1 << 20, Some(size), &mut rng(0)).unwrap_err();
        assert!(matches!(err, TaskError::TooLarge { .. }), "{name}: {err:?}");
    }
}

#[test]
fn task_config_from_toml() {
    let cfg: TaskConfig = toml::from_str("name = \"copy\"\nmax_length = 5").unwrap();
    assert_eq!(
        cfg.settings::<CopyConfig>().unwrap(),
        CopyConfig {
            max_length: 5,
            ..CopyConfig::default()
        }
    );
    let task = cfg.build().unwrap();
    for seed in 0..20 {
        assert!(task.batch(1, None, &mut rng(seed)).unwrap().steps() <= 11);
    }
    let cfg: TaskConfig = toml::from_str("name = \"priority-sort\"").unwrap();
    let registry = TaskRegistry::default();
    assert_eq!(
        registry.resolve(&cfg).unwrap(),
        TaskConfig::default_for("priority-sort").unwrap()
    );

    // Parsing only names the task; the registry checks the name and the options.
    let build = |text: &str| toml::from_str::<TaskConfig>(text).unwrap().build();
    assert!(matches!(
        build("name = \"copy\"\nmax_lenght = 5"),
        Err(TaskError::BadOptions { .. })
    ));
    assert!(matches!(
        build("name = \"kopy\""),
        Err(TaskError::UnknownTask { .. })
    ));
    assert!(toml::from_str::<TaskConfig>("max_length = 5").is_err());
    // Valid syntax, invalid settings: caught by build.
    let bad: TaskConfig =
        toml::from_str("name = \"copy\"\nmin_length = 9\nmax_length = 5").unwrap();
    assert!(matches!(bad.build(), Err(TaskError::InvalidConfig { .. })));

    // Every default config round-trips through TOML.
    for name in TASK_NAMES {
        let cfg = TaskConfig::default_for(name).unwrap();
        let text = toml::to_string(&cfg).unwrap();
        assert!(text.contains(&format!("name = \"{name}\"")), "{text}");
        assert_eq!(toml::from_str::<TaskConfig>(&text).unwrap(), cfg);
    }
}

#[test]
fn size_serde_as_string_or_integer() {
    #[derive(serde::Deserialize, serde::Serialize, PartialEq, Debug)]
    struct Eval {
        size: Size,
    }
    let e: Eval = toml::from_str("size = \"10x20\"").unwrap();
    assert_eq!(
        e.size,
        Size::Repeat {
            length: 10,
            repeats: 20
        }
    );
    let e: Eval = toml::from_str("size = 40").unwrap();
    assert_eq!(e.size, Size::Length(40));
    assert!(toml::from_str::<Eval>("size = -1").is_err());
    assert!(toml::from_str::<Eval>("size = \"ax2\"").is_err());
    assert_eq!(toml::to_string(&e).unwrap().trim(), "size = \"40\"");
}

#[test]
fn sequence_accessors() {
    let mut s = Sequence::zeros(2, 3, 4);
    assert_eq!(s.shape(), (2, 3, 4));
    assert_eq!(s.data.len(), 24);
    s.set(1, 2, 3, 5.0);
    assert_eq!(s.get(1, 2, 3), 5.0);
    assert_eq!(s.data[((3 + 2) * 4) + 3], 5.0);
    assert_eq!(s.row(1, 2), &[0.0, 0.0, 0.0, 5.0]);
    s.row_mut(0, 1)[0] = 2.0;
    assert_eq!(s.data[4], 2.0);
    assert!(Sequence::from_vec(2, 3, 4, vec![0.0; 23]).is_err());
    assert_eq!(
        Sequence::from_vec(2, 3, 4, vec![0.0; 24]).unwrap(),
        Sequence::zeros(2, 3, 4)
    );
    assert!(Sequence::try_zeros(usize::MAX, 2, 1).is_none());
}

#[test]
fn max_steps_bounds_every_batch_without_building_one() {
    let registry = ntm_tasks::TaskRegistry::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for name in registry.names() {
        let task = registry.build(&ntm_tasks::TaskConfig::named(name)).unwrap();
        let bound = task.max_steps(None).unwrap();
        for _ in 0..20 {
            let steps = task.batch(2, None, &mut rng).unwrap().steps();
            assert!(steps <= bound, "{name}: {steps} > {bound}");
        }
        let sizes = match name {
            "repeat-copy" => vec![
                Size::Repeat {
                    length: 10,
                    repeats: 20,
                },
                Size::Length(7),
            ],
            "memory-reuse" => vec![Size::Repeat {
                length: 20,
                repeats: 8,
            }],
            _ => vec![Size::Length(16), Size::Length(20), Size::Length(120)],
        };
        for size in sizes {
            let exact = task.batch(1, Some(size), &mut rng).unwrap().steps();
            let bound = task.max_steps(Some(size)).unwrap();
            assert!(exact <= bound, "{name} at {size}: {exact} > {bound}");
            if !matches!(size, Size::Length(_)) || name != "repeat-copy" {
                assert_eq!(exact, bound, "{name} at {size}");
            }
        }
        assert_eq!(task.max_steps(Some(Size::Length(0))), None, "{name}");
    }
}

#[test]
fn memory_reuse_copies_each_sequence_back_after_its_delimiter() {
    let task = MemoryReuseTask::new(MemoryReuseConfig::default()).unwrap();
    let b = task
        .batch(
            2,
            Some(Size::Repeat {
                length: 5,
                repeats: 3,
            }),
            &mut rng(4),
        )
        .unwrap();
    // Three sequences of 5 items, each followed by a delimiter and its 5 output steps.
    assert_eq!(b.inputs.shape(), (33, 2, 9));
    assert_eq!(b.scored_steps(), 15);
    for k in 0..3 {
        let start = k * 11;
        for j in 0..2 {
            assert_eq!(
                b.inputs.get(start + 5, j, 8),
                1.0,
                "delimiter of sequence {k}"
            );
            for t in 0..5 {
                assert_eq!(b.mask.get(start + t, j, 0), 0.0);
                assert_eq!(b.mask.get(start + 6 + t, j, 0), 1.0);
                assert_eq!(
                    b.targets.row(start + 6 + t, j),
                    &b.inputs.row(start + t, j)[..8]
                );
                assert!(b.inputs.row(start + 6 + t, j).iter().all(|&v| v == 0.0));
            }
        }
    }
    // Different sequences get different bits (45 random bits each; equal by chance 2^-40).
    assert_ne!(b.inputs.row(0, 0), b.inputs.row(11, 0));
    // Training sizes: one length per batch, the configured number of sequences.
    let b = task.batch(1, None, &mut rng(5)).unwrap();
    let length = b.scored_steps() / 4;
    assert!((1..=10).contains(&length));
    assert_eq!(b.steps(), 4 * (2 * length + 1));
    assert!(MemoryReuseTask::new(MemoryReuseConfig {
        sequences: 0,
        ..Default::default()
    })
    .is_err());
    assert!(task
        .batch(
            1,
            Some(Size::Repeat {
                length: 3,
                repeats: 0
            }),
            &mut rng(6)
        )
        .is_err());
}
