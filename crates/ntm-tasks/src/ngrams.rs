//! The dynamic N-grams task.

use rand::{Rng, RngCore};
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use crate::task::{ensure, unsupported};
use crate::{Batch, CostKind, Size, Task, TaskError};

/// Largest supported N-gram order (a table has `2^(order - 1)` entries per sequence).
pub const MAX_NGRAM_ORDER: usize = 16;

/// Settings of the dynamic N-grams task. [`Default`] gives the paper's: 6-grams (a context of 5
/// bits), sequences of 200 bits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NgramsConfig {
    /// N-gram order: each bit depends on the `order - 1` bits before it (1..=[`MAX_NGRAM_ORDER`]).
    pub order: usize,
    /// Bits per training sequence (at least `order` and at least 2).
    pub length: usize,
}

impl Default for NgramsConfig {
    fn default() -> Self {
        Self {
            order: 6,
            length: 200,
        }
    }
}

/// A table of `P(next bit = 1 | previous order - 1 bits)`.
///
/// A context is indexed by its `order - 1` bits read as a binary number, oldest bit most
/// significant: after the bits `1, 0, 0, 1, 1` the context index is `0b10011 = 19`.
#[derive(Clone, Debug, PartialEq)]
pub struct NgramTable {
    order: usize,
    probs: Vec<f64>,
}

impl NgramTable {
    /// A table from explicit probabilities; `probs.len()` must be `2^(order - 1)` and every
    /// probability must lie in `[0, 1]`.
    pub fn new(order: usize, probs: Vec<f64>) -> Result<Self, TaskError> {
        check_order(order)?;
        let n = 1usize << (order - 1);
        ensure(probs.len() == n, NgramsTask::NAME, || {
            format!(
                "an order-{order} table needs {n} probabilities, got {}",
                probs.len()
            )
        })?;
        ensure(
            probs.iter().all(|p| (0.0..=1.0).contains(p)),
            NgramsTask::NAME,
            || "table probabilities must lie in [0, 1]".into(),
        )?;
        Ok(Self { order, probs })
    }

    /// A random table: each of the `2^(order - 1)` probabilities drawn from Beta(1/2, 1/2).
    pub fn sample(order: usize, rng: &mut dyn RngCore) -> Result<Self, TaskError> {
        check_order(order)?;
        Ok(Self::sample_unchecked(order, rng))
    }

    fn sample_unchecked(order: usize, rng: &mut dyn RngCore) -> Self {
        let beta = Beta::new(0.5f64, 0.5).expect("Beta(1/2, 1/2) has valid parameters");
        let probs = (0..1usize << (order - 1))
            .map(|_| beta.sample(rng).clamp(0.0, 1.0))
            .collect();
        Self { order, probs }
    }

    /// The table's order `N`.
    pub fn order(&self) -> usize {
        self.order
    }

    /// The probabilities, indexed by context.
    pub fn probs(&self) -> &[f64] {
        &self.probs
    }

    /// `P(next bit = 1 | context)`, or `None` if `context >= 2^(order - 1)`.
    pub fn prob_one(&self, context: usize) -> Option<f64> {
        self.probs.get(context).copied()
    }

    /// A sequence of `length` bits: the first `order - 1` (or `length`, if fewer) fair coin
    /// flips, each later bit 1 with the table's probability given the `order - 1` bits before it.
    pub fn generate(&self, length: usize, rng: &mut dyn RngCore) -> Vec<u8> {
        let context_bits = self.order - 1;
        let mask = context_mask(self.order);
        let mut bits = Vec::with_capacity(length);
        let mut context = 0usize;
        for i in 0..length {
            let bit = if i < context_bits {
                rng.random::<bool>()
            } else {
                rng.random::<f64>() < self.probs[context]
            };
            bits.push(u8::from(bit));
            context = ((context << 1) | usize::from(bit)) & mask;
        }
        bits
    }
}

fn check_order(order: usize) -> Result<(), TaskError> {
    ensure(
        (1..=MAX_NGRAM_ORDER).contains(&order),
        NgramsTask::NAME,
        || format!("order must be in 1..={MAX_NGRAM_ORDER}, got {order}"),
    )
}

fn context_mask(order: usize) -> usize {
    (1usize << (order - 1)) - 1
}

/// Cost in bits of the Bayes-optimal sequential predictor on `bits`, scoring every bit after the
/// first (`x_1 .. x_{n-1}`, the targets of an N-grams episode).
///
/// A bit with a full context `c` of `order - 1` previous bits is predicted with
/// `p1 = (N1(c) + 1/2) / (N0(c) + N1(c) + 1)`, where `N0(c)` and `N1(c)` count the zeros and ones
/// that followed `c` earlier in `bits`; a bit with fewer previous bits gets `p1 = 1/2`. The cost
/// is `sum -log2 p(actual bit)`. Any non-zero value counts as a 1.
pub fn ngram_optimal_bits(bits: &[u8], order: usize) -> Result<f64, TaskError> {
    check_order(order)?;
    Ok(optimal_bits(order, bits.len(), |i| bits[i] != 0, |_| true))
}

/// Sequential optimal cost over `n` bits given by `bit(i)`; target `x_i` (i >= 1) is scored if
/// `scored(i)`. Counts are updated after every target, scored or not.
fn optimal_bits(
    order: usize,
    n: usize,
    bit: impl Fn(usize) -> bool,
    scored: impl Fn(usize) -> bool,
) -> f64 {
    let context_bits = order - 1;
    let mask = context_mask(order);
    let mut counts = vec![[0u32; 2]; 1usize << context_bits];
    let mut context = 0usize;
    let mut cost = 0.0;
    for i in 0..n {
        let x = bit(i);
        if i >= 1 {
            let known = i >= context_bits;
            let p1 = if known {
                let [n0, n1] = counts[context];
                (f64::from(n1) + 0.5) / (f64::from(n0) + f64::from(n1) + 1.0)
            } else {
                0.5
            };
            if scored(i) {
                cost -= if x { p1 } else { 1.0 - p1 }.log2();
            }
        }
        if i >= context_bits {
            counts[context][usize::from(x)] += 1;
        }
        context = ((context << 1) | usize::from(x)) & mask;
    }
    cost
}

/// Dynamic N-grams: predict each next bit of a sequence drawn from a random N-gram table.
///
/// Each sequence of a batch gets its own table ([`NgramTable::sample`]) and a sequence
/// `x_0 .. x_{length-1}` generated from it ([`NgramTable::generate`]). Inputs and targets have
/// one channel; there are `length - 1` steps, the input at step `t` is `x_t` and the target is
/// `x_{t+1}`; every step is scored. The cost is cross-entropy in bits, and
/// [`Task::optimal_cost`] gives that of the Bayes-optimal predictor ([`ngram_optimal_bits`]).
///
/// [`Size::Length`] sets the sequence length (at least `order` and at least 2);
/// [`Size::Repeat`] is unsupported.
#[derive(Clone, Debug, PartialEq)]
pub struct NgramsTask {
    config: NgramsConfig,
}

impl NgramsTask {
    const NAME: &'static str = "ngrams";

    /// Validates `config`: `1 <= order <= MAX_NGRAM_ORDER` and `length >= max(order, 2)`.
    pub fn new(config: NgramsConfig) -> Result<Self, TaskError> {
        check_order(config.order)?;
        ensure(config.length >= config.order.max(2), Self::NAME, || {
            format!(
                "length ({}) must be at least the order ({}) and at least 2",
                config.length, config.order
            )
        })?;
        Ok(Self { config })
    }

    /// The task's settings.
    pub fn config(&self) -> &NgramsConfig {
        &self.config
    }
}

impl Task for NgramsTask {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn input_size(&self) -> usize {
        1
    }

    fn output_size(&self) -> usize {
        1
    }

    fn cost_kind(&self) -> CostKind {
        CostKind::CrossEntropyBits
    }

    fn max_steps(&self, size: Option<Size>) -> Option<usize> {
        match size {
            None => self.config.length.checked_sub(1),
            Some(Size::Length(n)) if n >= self.config.order.max(2) => Some(n - 1),
            Some(_) => None,
        }
    }

    fn batch(
        &self,
        batch_size: usize,
        size: Option<Size>,
        rng: &mut dyn RngCore,
    ) -> Result<Batch, TaskError> {
        if batch_size == 0 {
            return Err(TaskError::EmptyBatch);
        }
        let order = self.config.order;
        let length = match size {
            None => self.config.length,
            Some(Size::Length(n)) if n >= order.max(2) => n,
            Some(s @ Size::Length(_)) => {
                return Err(unsupported(
                    Self::NAME,
                    s,
                    format!("sequences need at least {} bits", order.max(2)),
                ))
            }
            Some(s @ Size::Repeat { .. }) => {
                return Err(unsupported(
                    Self::NAME,
                    s,
                    "N-grams take a sequence length, not repeats",
                ))
            }
        };
        let steps = length - 1;
        let mut batch = Batch::zeros_checked(Self::NAME, Some(steps), batch_size, 1, 1)?;
        for b in 0..batch_size {
            let table = NgramTable::sample_unchecked(order, rng);
            let bits = table.generate(length, rng);
            for t in 0..steps {
                batch.inputs.set(t, b, 0, f32::from(bits[t]));
                batch.targets.set(t, b, 0, f32::from(bits[t + 1]));
            }
        }
        batch.mask_steps(0..steps);
        Ok(batch)
    }

    /// Bits per sequence of the Bayes-optimal predictor (see [`ngram_optimal_bits`]), summed
    /// over the steps whose mask is non-zero and averaged over the batch's sequences.
    ///
    /// The sequence is read back as `x_0 = input[0]`, `x_{t+1} = target[t]` (values above 0.5
    /// are ones). `None` if the batch does not have one input, one target and one mask channel,
    /// or has no steps or sequences.
    fn optimal_cost(&self, batch: &Batch) -> Option<f64> {
        let (steps, size) = (batch.steps(), batch.batch_size());
        let shapes_ok = batch.inputs.shape() == (steps, size, 1)
            && batch.targets.shape() == (steps, size, 1)
            && batch.mask.shape() == (steps, size, 1)
            && steps >= 1
            && size >= 1;
        if !shapes_ok {
            return None;
        }
        let total: f64 = (0..size)
            .map(|b| {
                let bit = |i: usize| {
                    let v = if i == 0 {
                        batch.inputs.get(0, b, 0)
                    } else {
                        batch.targets.get(i - 1, b, 0)
                    };
                    v > 0.5
                };
                optimal_bits(self.config.order, steps + 1, bit, |i| {
                    batch.mask.get(i - 1, b, 0) != 0.0
                })
            })
            .sum();
        Some(total / size as f64)
    }
}
