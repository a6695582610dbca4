//! Invariants of usage, allocation, links and precedence (proptest), after DeepMind's tests of
//! its access module.

use candle_core::{DType, Device, Tensor};
use ntm_dnc::{
    allocation, exclusive_cumprod, update_links, update_precedence, update_usage,
    write_allocations, ALLOCATION_EPS,
};
use proptest::prelude::*;

fn t(data: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).unwrap()
}

fn values(x: &Tensor) -> Vec<f64> {
    x.flatten_all().unwrap().to_vec1().unwrap()
}

/// Rows of `n` non-negative numbers summing to `scale[k]` each: a weighting times a gate.
fn weightings(raw: &[f64], scale: &[f64], n: usize) -> Vec<f64> {
    raw.chunks(n)
        .zip(scale)
        .flat_map(|(row, s)| {
            let total: f64 = row.iter().map(|x| x.exp()).sum();
            row.iter()
                .map(move |x| x.exp() / total * s)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `(batch, heads, rows, steps, logits, gates)` for a sequence of multi-head writes. The logits
/// reach +-8, so some writes are close to one-hot.
fn write_sequence() -> impl Strategy<Value = (usize, usize, usize, usize, Vec<f64>, Vec<f64>)> {
    (1usize..3, 1usize..3, 2usize..7, 1usize..6).prop_flat_map(|(b, h, n, steps)| {
        (
            Just(b),
            Just(h),
            Just(n),
            Just(steps),
            prop::collection::vec(-8f64..8.0, steps * b * h * n),
            prop::collection::vec(0f64..=1.0, steps * b * h),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn links_stay_in_range_with_zero_diagonal_and_sub_stochastic_rows_and_columns(
        (b, h, n, steps, logits, gates) in write_sequence()
    ) {
        let mut links = Tensor::zeros((b, h, n, n), DType::F64, &Device::Cpu).unwrap();
        let mut precedence = Tensor::zeros((b, h, n), DType::F64, &Device::Cpu).unwrap();
        let per_step = b * h * n;
        for s in 0..steps {
            let w = weightings(
                &logits[s * per_step..(s + 1) * per_step],
                &gates[s * b * h..(s + 1) * b * h],
                n,
            );
            let w = t(&w, &[b, h, n]);
            links = update_links(&links, &precedence, &w).unwrap();
            precedence = update_precedence(&precedence, &w).unwrap();
            let l = values(&links);
            for m in 0..b * h {
                for i in 0..n {
                    let mut row = 0.0;
                    let mut column = 0.0;
                    for j in 0..n {
                        let x = l[(m * n + i) * n + j];
                        prop_assert!((-1e-12..=1.0 + 1e-12).contains(&x), "L = {x}");
                        if i == j {
                            prop_assert_eq!(x, 0.0);
                        }
                        row += x;
                        column += l[(m * n + j) * n + i];
                    }
                    prop_assert!(row <= 1.0 + 1e-9, "row sum {row}");
                    prop_assert!(column <= 1.0 + 1e-9, "column sum {column}");
                }
            }
            for (k, p) in values(&precedence).chunks(n).enumerate() {
                let sum: f64 = p.iter().sum();
                prop_assert!(p.iter().all(|&x| x >= 0.0), "{p:?}");
                prop_assert!(sum <= 1.0 + 1e-9, "precedence {k} sums to {sum}");
            }
        }
    }

    #[test]
    fn usage_stays_in_the_unit_interval(
        (b, n) in (1usize..3, 2usize..8),
        seed in any::<u64>(),
    ) {
        let draw = |name: &str, count: usize| ntm_params::Init::Uniform(1.0).draw(seed, name, count);
        let (r, h) = (2, 2);
        let usage: Vec<f64> = draw("u", b * n).iter().map(|x| x.abs()).collect();
        let write = weightings(&draw("w", b * h * n), &draw("g", b * h).iter().map(|x| x.abs()).collect::<Vec<_>>(), n);
        let read = weightings(&draw("r", b * r * n), &vec![1.0; b * r], n);
        let free: Vec<f64> = draw("f", b * r).iter().map(|x| x.abs()).collect();
        let u = update_usage(&t(&usage, &[b, n]), &t(&write, &[b, h, n]), &t(&free, &[b, r]), &t(&read, &[b, r, n])).unwrap();
        for x in values(&u) {
            prop_assert!((0.0..=1.0).contains(&x), "usage {x}");
        }
    }

    #[test]
    fn allocation_sums_to_one_minus_the_product_of_usage_and_follows_the_least_used_row(
        (b, n) in (1usize..3, 1usize..10),
        seed in any::<u64>(),
        free_row in any::<prop::sample::Index>(),
        make_free in any::<bool>(),
    ) {
        // Distinct usages, spaced by at least 1e-3, so that the least used row is unambiguous.
        let mut usage = Vec::with_capacity(b * n);
        for k in 0..b {
            let mut rng_values = ntm_params::Init::Uniform(1.0).draw(seed, &format!("perm{k}"), n);
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&i, &j| rng_values[i].total_cmp(&rng_values[j]));
            for (rank, i) in order.iter().enumerate() {
                rng_values[*i] = (rank as f64 + 0.5) / n as f64 * 0.99;
            }
            if make_free {
                rng_values[free_row.index(n)] = 0.0;
            }
            usage.extend(rng_values);
        }
        let a = values(&allocation(&t(&usage, &[b, n])).unwrap());
        for k in 0..b {
            let u = &usage[k * n..(k + 1) * n];
            let row = &a[k * n..(k + 1) * n];
            prop_assert!(row.iter().all(|&x| (0.0..=1.0).contains(&x)), "{row:?}");
            let sum: f64 = row.iter().sum();
            let product: f64 = u.iter().map(|x| ALLOCATION_EPS + (1.0 - ALLOCATION_EPS) * x).product();
            prop_assert!((sum - (1.0 - product)).abs() < 1e-12, "sum {sum}, 1 - prod {}", 1.0 - product);
            prop_assert!(sum <= 1.0);
            if u.contains(&0.0) {
                prop_assert!(sum > 1.0 - 1e-5, "sum {sum} with a free row");
            }
            let argmax = (0..n).max_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap();
            let argmin = (0..n).min_by(|&i, &j| u[i].total_cmp(&u[j])).unwrap();
            prop_assert_eq!(argmax, argmin, "allocation {:?}, usage {:?}", row, u);
        }
    }

    #[test]
    fn exclusive_cumprod_is_the_product_of_everything_before(
        x in prop::collection::vec(prop_oneof![Just(0.0), -2f64..2.0], 1..40),
    ) {
        let n = x.len();
        let got = values(&exclusive_cumprod(&t(&x, &[1, n])).unwrap());
        let mut product = 1.0;
        for j in 0..n {
            prop_assert!((got[j] - product).abs() <= 1e-12 * product.abs().max(1.0), "at {j}: {} vs {product}", got[j]);
            product *= x[j];
        }
    }
}

#[test]
fn precedence_is_unchanged_without_a_write_and_replaced_by_a_full_write() {
    let p = t(&[0.1, 0.5, 0.2, 0.0], &[1, 1, 4]);
    let unchanged = update_precedence(&p, &t(&[0.0; 4], &[1, 1, 4])).unwrap();
    assert_eq!(values(&unchanged), values(&p));
    let full = t(&[0.0, 0.25, 0.0, 0.75], &[1, 1, 4]);
    let replaced = values(&update_precedence(&p, &full).unwrap());
    for (got, want) in replaced.iter().zip(values(&full)) {
        assert!((got - want).abs() < 1e-15, "{replaced:?}");
    }
}

#[test]
fn usage_is_one_after_a_full_write_and_zero_after_a_full_free() {
    let (n, r) = (5, 2);
    let usage = t(&[0.3, 0.0, 0.9, 0.5, 0.2], &[1, n]);
    let one_hot = |i: usize| {
        let mut v = vec![0.0; n];
        v[i] = 1.0;
        v
    };
    let reads = t(&[one_hot(3), one_hot(4)].concat(), &[1, r, n]);
    // Row 1 written in full, no frees.
    let u = values(
        &update_usage(
            &usage,
            &t(&one_hot(1), &[1, 1, n]),
            &t(&[0.0, 0.0], &[1, r]),
            &reads,
        )
        .unwrap(),
    );
    assert_eq!(u[1], 1.0);
    assert_eq!(u[0], 0.3);
    // Rows 3 and 4 read and freed in full: their usage is zero, even though row 3 is written.
    let u = values(
        &update_usage(
            &usage,
            &t(&one_hot(3), &[1, 1, n]),
            &t(&[1.0, 1.0], &[1, r]),
            &reads,
        )
        .unwrap(),
    );
    assert_eq!((u[3], u[4]), (0.0, 0.0));
    assert_eq!(u[2], 0.9);
    // Half a free halves the usage.
    let u = values(
        &update_usage(
            &usage,
            &t(&[0.0; 5], &[1, 1, n]),
            &t(&[0.5, 0.0], &[1, r]),
            &reads,
        )
        .unwrap(),
    );
    assert!((u[3] - 0.25).abs() < 1e-15, "{u:?}");
}

#[test]
fn allocation_is_nearly_one_hot_where_usage_is_nearly_zero() {
    for usage in [
        vec![0.7f64, 0.9, 1e-9, 0.5, 1.0, 0.6],
        vec![0.0; 6],
        vec![1e-8, 2e-8, 3e-8, 4e-8, 5e-8, 6e-8],
    ] {
        let argmin = (0..6)
            .min_by(|&i, &j| usage[i].total_cmp(&usage[j]))
            .unwrap();
        let a = values(&allocation(&t(&usage, &[1, 6])).unwrap());
        assert!(a[argmin] > 1.0 - 1e-5, "{usage:?} -> {a:?}");
        for (i, x) in a.iter().enumerate() {
            if i != argmin {
                assert!(*x < 1e-5, "{usage:?} -> {a:?}");
            }
        }
    }
    // A fully used memory allocates nothing.
    let a = values(&allocation(&t(&[1.0; 4], &[1, 4])).unwrap());
    assert!(a.iter().all(|&x| x < 1e-12), "{a:?}");
}

#[test]
fn a_write_head_with_gate_zero_leaves_the_next_head_the_same_allocation() {
    let usage = t(&[0.4, 0.1, 0.8, 0.3, 0.6], &[1, 5]);
    let closed = values(&write_allocations(&usage, &t(&[0.0, 1.0, 0.7], &[1, 3])).unwrap());
    let (first, rest) = closed.split_at(5);
    assert_eq!(first, &rest[..5]);
    // With the gate open the first head takes row 1, and the next head's allocation moves on.
    let open = values(&write_allocations(&usage, &t(&[1.0, 0.0, 0.0], &[1, 3])).unwrap());
    let second = &open[5..10];
    let argmax = (0..5)
        .max_by(|&i, &j| second[i].total_cmp(&second[j]))
        .unwrap();
    assert_eq!(argmax, 3, "{open:?}");
    assert_eq!(&open[5..10], &open[10..15]);
}
