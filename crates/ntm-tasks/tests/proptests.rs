//! Property tests over seeds, sizes and configs.

use ntm_tasks::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn size_display_round_trips(length in 0usize..1_000_000, repeats in proptest::option::of(0usize..1000)) {
        let size = match repeats {
            None => Size::Length(length),
            Some(repeats) => Size::Repeat { length, repeats },
        };
        prop_assert_eq!(size.to_string().parse::<Size>().unwrap(), size);
        prop_assert_eq!(size.to_string().to_uppercase().parse::<Size>().unwrap(), size);
    }

    #[test]
    fn batches_are_well_formed(seed in any::<u64>(), task_idx in 0usize..5, batch in 1usize..5) {
        let task = TaskConfig::default_for(TaskRegistry::default().names()[task_idx]).unwrap().build().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let b = task.batch(batch, None, &mut rng).unwrap();
        let t = b.steps();
        prop_assert_eq!(b.inputs.data.len(), t * batch * task.input_size());
        prop_assert_eq!(b.targets.data.len(), t * batch * task.output_size());
        prop_assert_eq!(b.mask.data.len(), t * batch);
        prop_assert!(b.scored_steps() >= 1);
        // Targets are bits; they are zero off the mask; inputs are zero on the mask (except
        // ngrams, which is scored on every step).
        for s in 0..t {
            for j in 0..batch {
                let m = b.mask.get(s, j, 0);
                prop_assert!(b.targets.row(s, j).iter().all(|&v| v == 0.0 || v == 1.0));
                if m == 0.0 {
                    prop_assert!(b.targets.row(s, j).iter().all(|&v| v == 0.0));
                } else if task.name() != "ngrams" {
                    prop_assert!(b.inputs.row(s, j).iter().all(|&v| v == 0.0));
                }
            }
        }
        // The output phase is the final block of steps.
        let first = (0..t).find(|&s| b.mask.get(s, 0, 0) == 1.0).unwrap();
        prop_assert_eq!(t - first, b.scored_steps());
    }

    #[test]
    fn copy_lengths_stay_in_range(seed in any::<u64>(), min in 1usize..10, extra in 0usize..10) {
        let task = CopyTask::new(CopyConfig { width: 3, min_length: min, max_length: min + extra }).unwrap();
        let b = task.batch(2, None, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        let l = b.scored_steps();
        prop_assert!(l >= min && l <= min + extra);
        prop_assert_eq!(b.steps(), 2 * l + 1);
    }

    #[test]
    fn optimal_cost_is_bounded(seed in any::<u64>(), order in 1usize..8, extra in 0usize..40) {
        let length = order.max(2) + extra;
        let task = NgramsTask::new(NgramsConfig { order, length }).unwrap();
        let b = task.batch(3, None, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        let cost = task.optimal_cost(&b).unwrap();
        // Each prediction is in [1/(2n+1) .. ], so the cost is positive and finite; it is at
        // least 1 bit for each target without a full context.
        prop_assert!(cost.is_finite() && cost > 0.0);
        prop_assert!(cost >= (order.saturating_sub(1)).min(length - 1) as f64 - 1e-9);
    }
}
