//! Optimisers (RMSProp in the Graves 2013 form, Adam) and gradient clipping.
//!
//! Both optimisers keep their moments as named tensors so that a checkpoint restores them
//! exactly, and an interrupted run continues as if it had never stopped.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

fn default_alpha() -> f64 {
    0.95
}
fn default_momentum() -> f64 {
    0.9
}
fn default_rms_eps() -> f64 {
    1e-4
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_adam_eps() -> f64 {
    1e-8
}

/// Which optimiser, with its hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// RMSProp with momentum as in Graves (2013), eq. 38-41, used by the NTM paper:
    /// `n = a n + (1-a) g^2; gbar = a gbar + (1-a) g; d = m d - lr g / sqrt(n - gbar^2 + eps); w += d`.
    Rmsprop {
        /// Learning rate.
        lr: f64,
        /// Decay of the running averages `a` (0.95).
        #[serde(default = "default_alpha")]
        alpha: f64,
        /// Momentum `m` (0.9).
        #[serde(default = "default_momentum")]
        momentum: f64,
        /// Added under the square root (1e-4).
        #[serde(default = "default_rms_eps")]
        eps: f64,
    },
    /// Adam (Kingma & Ba 2015) with bias correction.
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay of the first moment (0.9).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Decay of the second moment (0.999).
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Added to the denominator (1e-8).
        #[serde(default = "default_adam_eps")]
        eps: f64,
    },
}

impl OptimizerConfig {
    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Rmsprop { lr, .. } | OptimizerConfig::Adam { lr, .. } => *lr,
        }
    }

    /// Names of the per-variable state tensors.
    fn slots(&self) -> &'static [&'static str] {
        match self {
            OptimizerConfig::Rmsprop { .. } => &["n", "gbar", "delta"],
            OptimizerConfig::Adam { .. } => &["m", "v"],
        }
    }

    fn validate(&self) -> Result<()> {
        let ok = match *self {
            OptimizerConfig::Rmsprop {
                lr,
                alpha,
                momentum,
                eps,
            } => {
                lr > 0.0
                    && (0.0..1.0).contains(&alpha)
                    && (0.0..1.0).contains(&momentum)
                    && eps > 0.0
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                lr > 0.0 && (0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2) && eps > 0.0
            }
        };
        if ok && self.lr().is_finite() {
            Ok(())
        } else {
            Err(TrainError::Config(format!(
                "optimizer hyperparameters out of range: {self:?}"
            )))
        }
    }
}

fn default_factor() -> f64 {
    0.1
}

/// A learning-rate schedule: the factor by which the optimiser's rate is multiplied, as a
/// function of the training sequences seen before an update. Counting sequences rather than
/// updates keeps a schedule's meaning when the batch size changes, and makes it a pure
/// function of the run's progress, so a resumed run follows it exactly.
///
/// ```
/// use ntm_train::Schedule;
///
/// // Ramp up over the first 1,000 sequences, then divide by 10 after 50,000 and 80,000.
/// let s = Schedule { warmup: 1000, decay_at: vec![50_000, 80_000], factor: 0.1 };
/// assert_eq!(s.scale(0), 0.001);
/// assert_eq!(s.scale(499), 0.5);
/// assert_eq!(s.scale(1000), 1.0);
/// assert!((s.scale(60_000) - 0.1).abs() < 1e-12);
/// assert!((s.scale(80_000) - 0.01).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Schedule {
    /// Linear warm-up: before sequence `warmup` the rate is `(seen + 1) / warmup` of the full
    /// rate (0: no warm-up).
    pub warmup: u64,
    /// Sequence counts, ascending, from which the rate is multiplied by `factor` once more.
    pub decay_at: Vec<u64>,
    /// The factor of each decay (0.1).
    #[serde(default = "default_factor")]
    pub factor: f64,
}

impl Default for Schedule {
    /// A constant rate.
    fn default() -> Self {
        Self {
            warmup: 0,
            decay_at: Vec::new(),
            factor: default_factor(),
        }
    }
}

impl Schedule {
    /// Whether the rate never changes (no warm-up and no decay).
    pub fn is_constant(&self) -> bool {
        self.warmup == 0 && self.decay_at.is_empty()
    }

    /// The multiplier of the learning rate for an update made after `seen` sequences.
    pub fn scale(&self, seen: u64) -> f64 {
        let warm = if seen < self.warmup {
            (seen + 1) as f64 / self.warmup as f64
        } else {
            1.0
        };
        let decays = self.decay_at.iter().filter(|&&at| seen >= at).count();
        warm * self.factor.powi(decays as i32)
    }

    /// Checks that the factor is in (0, 1] and the decay points ascend.
    pub fn validate(&self) -> Result<()> {
        if !(self.factor > 0.0 && self.factor <= 1.0) {
            return Err(TrainError::Config(format!(
                "train.schedule.factor must be in (0, 1], not {}",
                self.factor
            )));
        }
        if self.decay_at.windows(2).any(|w| w[0] >= w[1]) {
            return Err(TrainError::Config(format!(
                "train.schedule.decay_at must ascend strictly: {:?}",
                self.decay_at
            )));
        }
        Ok(())
    }
}

/// An optimiser over a fixed, ordered list of named variables.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    vars: Vec<(String, Var)>,
    /// Per variable, one tensor per slot of the config.
    state: Vec<Vec<Tensor>>,
    steps: u64,
    /// Multiplies the configured learning rate ([`Optimizer::set_lr_scale`]).
    lr_scale: f64,
}

impl Optimizer {
    /// An optimiser with zeroed moments over `vars`.
    pub fn new(config: OptimizerConfig, vars: Vec<(String, Var)>) -> Result<Self> {
        config.validate()?;
        if let Some((name, var)) = vars.first() {
            let lr = Tensor::new(config.lr(), &candle_core::Device::Cpu)?.to_dtype(var.dtype())?;
            let lr = lr.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            if !(lr.is_finite() && lr > 0.0) {
                return Err(TrainError::Config(format!(
                    "learning rate {} is not a positive finite number in {:?}, the dtype of `{name}`",
                    config.lr(),
                    var.dtype()
                )));
            }
        }
        let state = vars
            .iter()
            .map(|(_, v)| {
                config
                    .slots()
                    .iter()
                    .map(|_| v.as_tensor().zeros_like())
                    .collect::<candle_core::Result<Vec<_>>>()
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            config,
            vars,
            state,
            steps: 0,
            lr_scale: 1.0,
        })
    }

    /// Number of updates applied so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Sets the multiplier of the configured learning rate for the next updates (a
    /// [`Schedule`]'s [`Schedule::scale`]); 1 at the start.
    pub fn set_lr_scale(&mut self, scale: f64) {
        self.lr_scale = scale;
    }

    /// The learning rate the next update uses: the configured one times the scale.
    pub fn lr(&self) -> f64 {
        self.config.lr() * self.lr_scale
    }

    /// The variables, in update order.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The gradient of every variable from `grads` (zeros where a variable got none).
    pub fn gradients(&self, grads: &GradStore) -> Result<Vec<Tensor>> {
        self.vars
            .iter()
            .map(|(_, v)| match grads.get(v.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => Ok(v.as_tensor().zeros_like()?),
            })
            .collect()
    }

    /// Applies one update with the gradients `grads`, aligned with [`Optimizer::vars`].
    ///
    /// The new values are computed for every variable first and checked: if any of them is NaN
    /// or infinite (a learning rate far too large, say), nothing changes and the error is
    /// [`TrainError::NonFinite`] with `step` 0 (the trainer fills in its own step).
    pub fn step(&mut self, grads: &[Tensor]) -> Result<()> {
        let update = self.prepare(grads)?;
        let flag = update.finite_flag()?.to_dtype(candle_core::DType::F64)?;
        if !flag.to_scalar::<f64>()?.is_finite() {
            return Err(TrainError::NonFinite {
                step: 0,
                what: "parameters after the update",
            });
        }
        self.commit(update)
    }

    /// Computes the next update from `grads` without applying it, and without reading
    /// anything back from the device: the caller may check it ([`Update::finite_flag`]) and
    /// then [`Optimizer::commit`] it, or drop it and leave everything as it was.
    pub fn prepare(&self, grads: &[Tensor]) -> Result<Update> {
        if grads.len() != self.vars.len() {
            return Err(TrainError::Config(format!(
                "{} gradients for {} variables",
                grads.len(),
                self.vars.len()
            )));
        }
        let t = (self.steps + 1) as i32;
        let lr = self.lr();
        let mut values = Vec::with_capacity(self.vars.len());
        for (((_, var), state), g) in self.vars.iter().zip(&self.state).zip(grads) {
            let w = var.as_tensor();
            // On the CPU one pass per variable, the composition's arithmetic to the last bit.
            let fused = ntm_kernels::runs_on(w);
            values.push(match self.config {
                OptimizerConfig::Rmsprop {
                    alpha,
                    momentum,
                    eps,
                    ..
                } if fused => {
                    let hp = ntm_kernels::Rmsprop {
                        lr,
                        alpha,
                        momentum,
                        eps,
                    };
                    let (w, s) = ntm_kernels::rmsprop(w, g, [&state[0], &state[1], &state[2]], hp)?;
                    (w, s.to_vec())
                }
                OptimizerConfig::Rmsprop {
                    alpha,
                    momentum,
                    eps,
                    ..
                } => {
                    let n = ((&state[0] * alpha)? + (g.sqr()? * (1.0 - alpha))?)?;
                    let gbar = ((&state[1] * alpha)? + (g * (1.0 - alpha))?)?;
                    let denom = ((&n - gbar.sqr()?)? + eps)?.sqrt()?;
                    let delta = ((&state[2] * momentum)? - (g / denom)?.affine(lr, 0.0)?)?;
                    ((w + &delta)?, vec![n, gbar, delta])
                }
                OptimizerConfig::Adam {
                    beta1, beta2, eps, ..
                } if fused => {
                    let hp = ntm_kernels::Adam {
                        lr,
                        beta1,
                        beta2,
                        eps,
                        t,
                    };
                    let (w, s) = ntm_kernels::adam(w, g, [&state[0], &state[1]], hp)?;
                    (w, s.to_vec())
                }
                OptimizerConfig::Adam {
                    beta1, beta2, eps, ..
                } => {
                    let m = ((&state[0] * beta1)? + (g * (1.0 - beta1))?)?;
                    let v = ((&state[1] * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                    let m_hat = (&m / (1.0 - beta1.powi(t)))?;
                    let v_hat = (&v / (1.0 - beta2.powi(t)))?;
                    let update = (m_hat / (v_hat.sqrt()? + eps)?)?;
                    ((w - (update * lr)?)?, vec![m, v])
                }
            });
        }
        Ok(Update { values })
    }

    /// Applies an update made by [`Optimizer::prepare`] from the current state.
    pub fn commit(&mut self, update: Update) -> Result<()> {
        for (((_, var), state), (w, s)) in self.vars.iter().zip(&mut self.state).zip(update.values)
        {
            var.set(&w)?;
            *state = s;
        }
        self.steps += 1;
        Ok(())
    }

    /// The moments as named tensors, `optim.<variable>.<slot>`, for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let slots = self.config.slots();
        self.vars
            .iter()
            .zip(&self.state)
            .flat_map(|((name, _), s)| {
                s.iter()
                    .zip(slots)
                    .map(move |(t, slot)| (format!("optim.{name}.{slot}"), t.clone()))
            })
            .collect()
    }

    /// Restores the moments saved by [`Optimizer::state_tensors`] and the step count.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        let slots = self.config.slots();
        for ((name, var), state) in self.vars.iter().zip(self.state.iter_mut()) {
            for (slot, value) in slots.iter().zip(state.iter_mut()) {
                let key = format!("optim.{name}.{slot}");
                let t = tensors.get(&key).ok_or_else(|| {
                    TrainError::Checkpoint(format!("missing optimizer state `{key}`"))
                })?;
                if t.dims() != var.dims() {
                    return Err(TrainError::Checkpoint(format!(
                        "optimizer state `{key}` has shape {:?}, the model {:?}",
                        t.dims(),
                        var.dims()
                    )));
                }
                *value = t.to_dtype(var.dtype())?.to_device(var.device())?;
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// An update computed by [`Optimizer::prepare`]: the new value and moments of every variable.
#[derive(Debug)]
pub struct Update {
    values: Vec<(Tensor, Vec<Tensor>)>,
}

impl Update {
    /// A scalar on the device that is 0 when every new value is finite and NaN otherwise
    /// ([`finite_flag`] of the new values).
    pub fn finite_flag(&self) -> Result<Tensor> {
        finite_flag(self.values.iter().map(|(w, _)| w))
    }
}

/// A scalar `f64` tensor on the device that is 0 when every value of `tensors` is finite and
/// NaN otherwise (`x * 0` is 0 for a finite `x` and NaN for an infinite or NaN one), so that
/// the check costs no read from the device until the caller wants it.
pub fn finite_flag<'a>(tensors: impl Iterator<Item = &'a Tensor>) -> Result<Tensor> {
    sum_over(tensors, |t| t.affine(0.0, 0.0))
}

/// `sum_all(part(t))` over `tensors`, added up as an `f64` scalar on their device (0 on the
/// CPU for no tensors).
fn sum_over<'a>(
    tensors: impl Iterator<Item = &'a Tensor>,
    part: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for t in tensors {
        let value = part(t)?.sum_all()?.to_dtype(candle_core::DType::F64)?;
        total = Some(match total {
            Some(sum) => (sum + value)?,
            None => value,
        });
    }
    match total {
        Some(sum) => Ok(sum),
        None => Ok(Tensor::new(0f64, &candle_core::Device::Cpu)?),
    }
}

/// Clips every gradient component to `[-limit, limit]` (the NTM paper uses 10).
pub fn clip_values(grads: &mut [Tensor], limit: f64) -> Result<()> {
    for g in grads.iter_mut() {
        *g = g.clamp(-limit, limit)?;
    }
    Ok(())
}

/// The Euclidean norm of all gradients together, as an `f64` scalar on their device.
pub fn global_norm_tensor(grads: &[Tensor]) -> Result<Tensor> {
    Ok(sum_over(grads.iter(), Tensor::sqr)?.sqrt()?)
}

/// The Euclidean norm of all gradients together.
pub fn global_norm(grads: &[Tensor]) -> Result<f64> {
    Ok(global_norm_tensor(grads)?.to_scalar::<f64>()?)
}

/// Scales all gradients by `max_norm / norm` when their global norm `norm` (from
/// [`global_norm_tensor`]) exceeds `max_norm`, on the device: nothing is read back.
pub fn clip_to_norm(grads: &mut [Tensor], norm: &Tensor, max_norm: f64) -> Result<()> {
    // min(1, max_norm / norm): 1 when the norm is within bounds (and for a zero norm), NaN when
    // the norm is NaN, which the caller's finiteness check then reports.
    let scale = (norm.recip()? * max_norm)?.minimum(1.0)?;
    let mut cast = scale.clone();
    for g in grads.iter_mut() {
        if cast.dtype() != g.dtype() {
            cast = scale.to_dtype(g.dtype())?;
        }
        *g = g.broadcast_mul(&cast)?;
    }
    Ok(())
}

/// Scales all gradients by `max_norm / norm` when their global norm exceeds `max_norm`;
/// returns the norm before clipping.
pub fn clip_global_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let norm = global_norm_tensor(grads)?;
    clip_to_norm(grads, &norm, max_norm)?;
    Ok(norm.to_scalar::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn scalar_var(x: f64) -> Vec<(String, Var)> {
        vec![("w".into(), Var::new(&[x], &Device::Cpu).unwrap())]
    }

    fn value(opt: &Optimizer) -> f64 {
        opt.vars()[0].1.as_tensor().to_vec1::<f64>().unwrap()[0]
    }

    fn grad(g: f64) -> Vec<Tensor> {
        vec![Tensor::new(&[g], &Device::Cpu).unwrap()]
    }

    #[test]
    fn rmsprop_matches_hand_computed_steps() {
        let cfg = OptimizerConfig::Rmsprop {
            lr: 0.1,
            alpha: 0.95,
            momentum: 0.9,
            eps: 1e-4,
        };
        let mut opt = Optimizer::new(cfg, scalar_var(1.0)).unwrap();
        // Step 1, g = 2: n = 0.05*4 = 0.2; gbar = 0.05*2 = 0.1; d = -0.1*2/sqrt(0.2 - 0.01 + 1e-4).
        opt.step(&grad(2.0)).unwrap();
        let d1 = -0.1 * 2.0 / (0.2f64 - 0.01 + 1e-4).sqrt();
        assert!((value(&opt) - (1.0 + d1)).abs() < 1e-12);
        // Step 2, g = -1: n = 0.95*0.2 + 0.05 = 0.24; gbar = 0.95*0.1 - 0.05 = 0.045;
        // d = 0.9 d1 + 0.1 / sqrt(0.24 - 0.045^2 + 1e-4).
        opt.step(&grad(-1.0)).unwrap();
        let d2 = 0.9 * d1 + 0.1 / (0.24f64 - 0.045 * 0.045 + 1e-4).sqrt();
        assert!((value(&opt) - (1.0 + d1 + d2)).abs() < 1e-12);
    }

    #[test]
    fn adam_matches_hand_computed_steps() {
        let cfg = OptimizerConfig::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let mut opt = Optimizer::new(cfg, scalar_var(0.5)).unwrap();
        // Step 1: bias-corrected moments are g and g^2, so the step is lr * sign(g) (almost).
        opt.step(&grad(3.0)).unwrap();
        let s1 = 0.01 * 3.0 / (3.0 + 1e-8);
        assert!((value(&opt) - (0.5 - s1)).abs() < 1e-12);
        // Step 2, g = 1: m = 0.9*0.3 + 0.1 = 0.37; v = 0.999*0.009 + 0.001 = 0.009991.
        opt.step(&grad(1.0)).unwrap();
        let m_hat = 0.37 / (1.0 - 0.81);
        let v_hat = 0.009991 / (1.0 - 0.998001);
        let s2 = 0.01 * m_hat / (f64::sqrt(v_hat) + 1e-8);
        assert!((value(&opt) - (0.5 - s1 - s2)).abs() < 1e-12);
    }

    #[test]
    fn state_round_trips_exactly() {
        let cfg = OptimizerConfig::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let mut a = Optimizer::new(cfg.clone(), scalar_var(0.5)).unwrap();
        a.step(&grad(3.0)).unwrap();
        let saved: HashMap<String, Tensor> = a.state_tensors().into_iter().collect();
        assert!(saved.contains_key("optim.w.m") && saved.contains_key("optim.w.v"));
        let mut b = Optimizer::new(cfg, scalar_var(value(&a))).unwrap();
        b.load_state(&saved, a.steps()).unwrap();
        a.step(&grad(-2.0)).unwrap();
        b.step(&grad(-2.0)).unwrap();
        assert_eq!(value(&a), value(&b));
        let mut missing = saved.clone();
        missing.remove("optim.w.v");
        assert!(matches!(
            b.load_state(&missing, 1),
            Err(TrainError::Checkpoint(_))
        ));
    }

    #[test]
    fn bad_hyperparameters_are_rejected() {
        let bad = OptimizerConfig::Adam {
            lr: -1.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        assert!(Optimizer::new(bad, scalar_var(0.0)).is_err());
        let bad = OptimizerConfig::Rmsprop {
            lr: 1e-3,
            alpha: 1.5,
            momentum: 0.9,
            eps: 1e-4,
        };
        assert!(Optimizer::new(bad, scalar_var(0.0)).is_err());
    }

    #[test]
    fn clipping_by_value_and_by_global_norm() {
        let dev = Device::Cpu;
        let mut g = vec![
            Tensor::new(&[-30f64, 4.0], &dev).unwrap(),
            Tensor::new(&[12f64], &dev).unwrap(),
        ];
        clip_values(&mut g, 10.0).unwrap();
        assert_eq!(g[0].to_vec1::<f64>().unwrap(), vec![-10.0, 4.0]);
        assert_eq!(g[1].to_vec1::<f64>().unwrap(), vec![10.0]);
        // Norm sqrt(100 + 16 + 100) = sqrt(216); clip to 3.
        let norm = clip_global_norm(&mut g, 3.0).unwrap();
        assert!((norm - 216f64.sqrt()).abs() < 1e-12);
        assert!((global_norm(&g).unwrap() - 3.0).abs() < 1e-12);
        // Under the limit nothing changes.
        let before = g[0].to_vec1::<f64>().unwrap();
        clip_global_norm(&mut g, 100.0).unwrap();
        assert_eq!(g[0].to_vec1::<f64>().unwrap(), before);
    }

    #[test]
    fn clipping_by_value_keeps_a_nan_for_the_finiteness_check() {
        let values = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 12.0];
        let mut g = vec![Tensor::new(&values, &Device::Cpu).unwrap()];
        clip_values(&mut g, 10.0).unwrap();
        let got = g[0].to_vec1::<f32>().unwrap();
        assert!(got[0].is_nan(), "{got:?}");
        assert_eq!(got[1..], [10.0, -10.0, -0.0, 10.0], "{got:?}");
    }

    #[test]
    fn configs_parse_with_defaults() {
        let c: OptimizerConfig = toml::from_str("kind = \"rmsprop\"\nlr = 1e-4\n").unwrap();
        assert_eq!(
            c,
            OptimizerConfig::Rmsprop {
                lr: 1e-4,
                alpha: 0.95,
                momentum: 0.9,
                eps: 1e-4
            }
        );
        assert!(
            toml::from_str::<OptimizerConfig>("kind = \"adam\"\nlr = 1e-3\nbeta = 0.9\n").is_err()
        );
        assert!(toml::from_str::<OptimizerConfig>("kind = \"sgd\"\nlr = 1e-3\n").is_err());
    }
}
