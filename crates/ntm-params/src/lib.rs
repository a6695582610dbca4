//! Seeded, named parameters in a candle [`VarMap`], and the layers built on them.
//!
//! candle's CPU random generator cannot be seeded, so this crate draws every initial value from
//! its own generator: each parameter gets a ChaCha8 stream seeded from the model seed and the
//! parameter's full name. The same seed therefore gives the same weights on every run and every
//! device, whatever order the parameters are created in. Names are paths through the model
//! (`memory.read.initial_weights`), which is how they appear in a safetensors checkpoint.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use ntm_params::{Init, Linear, Params};
//!
//! # fn main() -> Result<(), ntm_params::ParamsError> {
//! let params = Params::new(42, DType::F32, &Device::Cpu);
//! let layer = Linear::new(&params.pp("output"), 3, 2)?;
//! let y = layer.forward(&Tensor::ones((4, 3), DType::F32, &Device::Cpu)?)?;
//! assert_eq!(y.dims(), &[4, 2]);
//! assert_eq!(params.param_count(), 3 * 2 + 2);
//! assert_eq!(params.names(), vec!["output.bias".to_string(), "output.weight".to_string()]);
//!
//! // Same seed, same weights.
//! let again = Params::new(42, DType::F32, &Device::Cpu);
//! let w = again.get((2, 3), "output.weight", Init::Uniform(1.0 / 3f64.sqrt()))?;
//! let diff = (w - &layer.weight)?.abs()?.sum_all()?.to_scalar::<f32>()?;
//! assert_eq!(diff, 0.0);
//! # Ok(())
//! # }
//! ```

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};

/// Errors from parameter creation and the layers.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// A parameter exists under this name with another shape.
    #[error("parameter `{name}` exists with shape {existing:?}, requested {requested:?}")]
    ShapeConflict {
        /// Full parameter name.
        name: String,
        /// Shape already stored.
        existing: Vec<usize>,
        /// Shape requested now.
        requested: Vec<usize>,
    },
    /// An input does not have the shape a layer needs.
    #[error("{layer}: input has shape {got:?}, expected [batch, {expected}]")]
    InputShape {
        /// The layer's name.
        layer: String,
        /// The input's shape.
        got: Vec<usize>,
        /// The feature size the layer expects.
        expected: usize,
    },
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ParamsError>;

/// How a parameter's initial values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Every element the same value.
    Const(f64),
    /// Uniform in `[-a, a]`.
    Uniform(f64),
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
}

impl Init {
    /// `count` values drawn from the stream of `(seed, name)`: what [`Params::get`] stores, and
    /// also how non-trainable random tensors (a random memory initialisation) are made.
    pub fn draw(self, seed: u64, name: &str, count: usize) -> Vec<f64> {
        let mut rng = stream(seed, name);
        match self {
            Init::Const(v) => vec![v; count],
            Init::Uniform(a) => match Uniform::new_inclusive(-a, a) {
                Ok(dist) => dist.sample_iter(&mut rng).take(count).collect(),
                Err(_) => vec![0.0; count],
            },
            Init::Normal(std) => (0..count)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    std * z
                })
                .collect(),
        }
    }
}

/// A handle on a shared [`VarMap`] with a seed, a dtype, a device and a name prefix.
///
/// Cloning is cheap and shares the same variables; [`Params::pp`] descends into a sub-scope.
#[derive(Clone)]
pub struct Params {
    varmap: VarMap,
    seed: u64,
    dtype: DType,
    device: Device,
    prefix: String,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params")
            .field("seed", &self.seed)
            .field("dtype", &self.dtype)
            .field("prefix", &self.prefix)
            .field("count", &self.param_count())
            .finish()
    }
}

/// FNV-1a, a stable hash: parameter streams must not change between Rust releases.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A random generator for the named stream `name` of `seed`.
///
/// Everything random in the workspace derives from one seed through this function, so that
/// streams are independent of creation order.
pub fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ stable_hash(name))
}

impl Params {
    /// An empty parameter store; every initial value will derive from `seed`.
    pub fn new(seed: u64, dtype: DType, device: &Device) -> Self {
        Self {
            varmap: VarMap::new(),
            seed,
            dtype,
            device: device.clone(),
            prefix: String::new(),
        }
    }

    /// The same store, one scope deeper: names become `prefix.name`.
    pub fn pp(&self, name: &str) -> Self {
        let mut sub = self.clone();
        sub.prefix = self.full_name(name);
        sub
    }

    fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    /// The parameter `name` in this scope, created with `init` if it does not exist yet.
    pub fn get<S: Into<Shape>>(&self, shape: S, name: &str, init: Init) -> Result<Tensor> {
        let shape: Shape = shape.into();
        let full = self.full_name(name);
        let seed = self.seed;
        self.get_or_create(shape, full.clone(), |count| init.draw(seed, &full, count))
    }

    /// The parameter `name` in this scope, created from `values(count)` if it does not exist yet.
    ///
    /// For initial values no [`Init`] describes, such as an LSTM's forget-gate bias of 1.
    pub fn get_with<S, F>(&self, shape: S, name: &str, values: F) -> Result<Tensor>
    where
        S: Into<Shape>,
        F: FnOnce(usize) -> Vec<f64>,
    {
        let shape: Shape = shape.into();
        self.get_or_create(shape, self.full_name(name), values)
    }

    fn get_or_create<F>(&self, shape: Shape, full: String, values: F) -> Result<Tensor>
    where
        F: FnOnce(usize) -> Vec<f64>,
    {
        let mut vars = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(var) = vars.get(&full) {
            if var.dims() != shape.dims() {
                return Err(ParamsError::ShapeConflict {
                    name: full,
                    existing: var.dims().to_vec(),
                    requested: shape.dims().to_vec(),
                });
            }
            return Ok(var.as_tensor().clone());
        }
        let mut data = values(shape.elem_count());
        data.resize(shape.elem_count(), 0.0);
        let tensor = Tensor::from_vec(data, shape, &self.device)?.to_dtype(self.dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let t = var.as_tensor().clone();
        vars.insert(full, var);
        Ok(t)
    }

    /// The underlying variable map (for optimisers and checkpoints).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// All variables with their full names, sorted by name: a stable order for optimisers.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let vars = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<(String, Var)> =
            vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// All parameter names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.named_vars().into_iter().map(|(n, _)| n).collect()
    }

    /// Total number of scalar parameters in the whole store.
    pub fn param_count(&self) -> usize {
        let vars = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        vars.values().map(|v| v.elem_count()).sum()
    }

    /// The seed every initial value derives from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The dtype parameters are created in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// A fully connected layer `y = x W^T + b` over `[batch, in]` inputs.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Weight matrix `[out, in]`.
    pub weight: Tensor,
    /// Bias `[out]`.
    pub bias: Tensor,
    name: String,
}

impl Linear {
    /// A layer named by the scope of `params`, initialised uniformly in `+-1/sqrt(in)`, zero bias.
    pub fn new(params: &Params, input: usize, output: usize) -> Result<Self> {
        let bound = 1.0 / (input.max(1) as f64).sqrt();
        Ok(Self {
            weight: params.get((output, input), "weight", Init::Uniform(bound))?,
            bias: params.get(output, "bias", Init::Const(0.0))?,
            name: params.prefix.clone(),
        })
    }

    /// A layer of the scope of `params` from a weight `[out, in]` and a bias `[out]` made
    /// there with initialisations of their own (an LSTM's gates).
    pub fn from_parts(params: &Params, weight: Tensor, bias: Tensor) -> Self {
        Self {
            weight,
            bias,
            name: params.prefix.clone(),
        }
    }

    /// Input feature size.
    pub fn input_size(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Output feature size.
    pub fn output_size(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Applies the layer to `[batch, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check(x)?;
        add_bias(&x.matmul(&self.weight.t()?)?, &self.bias)
    }

    /// The layer bound for the steps of one sequence: the same function as [`Linear::forward`],
    /// but where the fused kernels run its weight's gradient is summed over the steps beside
    /// candle's graph ([`ntm_kernels::StepWeight`]). Bind once per forward pass.
    pub fn bind(&self) -> Result<StepLinear> {
        let weight = if ntm_kernels::runs_on(&self.weight) {
            Some(ntm_kernels::StepWeight::bind_transposed(&self.weight)?)
        } else {
            None
        };
        Ok(StepLinear {
            layer: self.clone(),
            weight,
        })
    }

    fn check(&self, x: &Tensor) -> Result<()> {
        match x.dims() {
            [_, i] if *i == self.input_size() => {}
            got => {
                return Err(ParamsError::InputShape {
                    layer: self.name.clone(),
                    got: got.to_vec(),
                    expected: self.input_size(),
                })
            }
        }
        Ok(())
    }
}

/// A [`Linear`] bound for the steps of one sequence ([`Linear::bind`]).
#[derive(Debug, Clone)]
pub struct StepLinear {
    layer: Linear,
    weight: Option<ntm_kernels::StepWeight>,
}

impl StepLinear {
    /// Applies the layer to `[batch, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weight {
            Some(w) => {
                self.layer.check(x)?;
                add_bias(&w.matmul(x)?, &self.layer.bias)
            }
            None => self.layer.forward(x),
        }
    }
}

/// The logistic sigmoid, with candle's fused forward and backward.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::sigmoid(x)?)
}

/// `softplus(x) = log(1 + e^x)`, in the overflow-free form `max(x, 0) + log(1 + e^-|x|)`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// `x` clipped to `[-bound, bound]`; the gradient passes where `|x| <= bound` and is zero
/// elsewhere, as for candle's `clamp`.
///
/// On the CPU in `f32` and `f64` this is one graph node with its own backward
/// ([`ntm_kernels::clip`]); candle's `clamp`, the reference and the path elsewhere or with the
/// kernels switched off, is a maximum and a minimum, whose backward passes build comparison
/// masks and zero tensors.
pub fn clip(x: &Tensor, bound: f64) -> Result<Tensor> {
    if ntm_kernels::runs_on(x) {
        Ok(ntm_kernels::clip(x, bound)?)
    } else {
        Ok(x.clamp(-bound, bound)?)
    }
}

/// `x [batch, k] + bias [k]`, the bias added to every row.
///
/// On the CPU in `f32` and `f64` this is one graph node whose backward sums the gradient's
/// columns in one pass ([`ntm_kernels::add_bias`]); the backward of candle's `broadcast_add`, the
/// reference and the path elsewhere or with the kernels switched off, reduces over the batch
/// with a general strided reduction, which cost several percent of a training step.
pub fn add_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if ntm_kernels::runs_on(x) && x.dtype() == bias.dtype() && bias.device().is_cpu() {
        Ok(ntm_kernels::add_bias(x, bias)?)
    } else {
        Ok(x.broadcast_add(bias)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_matches_clamp_in_value_and_gradient() {
        // Away from the bounds themselves, where candle's clamp splits the gradient in half.
        let x = Var::new(&[-3f64, -1.99, -0.5, 0.0, 1.5, 2.01, 7.0], &Device::Cpu).unwrap();
        let weights = Tensor::new(&[1f64, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], &Device::Cpu).unwrap();
        let run = |f: &dyn Fn(&Tensor) -> Tensor| {
            let y = f(x.as_tensor());
            let g = (&y * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gx: Vec<f64> = g.get(x.as_tensor()).unwrap().to_vec1().unwrap();
            (y.to_vec1::<f64>().unwrap(), gx)
        };
        let fused = run(&|t| clip(t, 2.0).unwrap());
        let reference = run(&|t| t.clamp(-2.0, 2.0).unwrap());
        assert_eq!(fused.0, vec![-2.0, -1.99, -0.5, 0.0, 1.5, 2.0, 2.0]);
        assert_eq!(fused.1, vec![0.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]);
        assert_eq!(fused, reference);
    }

    #[test]
    fn add_bias_matches_broadcast_add_in_value_and_gradient() {
        let x = Var::new(&[[1f64, -2.0, 3.0], [0.5, 4.0, -6.0]], &Device::Cpu).unwrap();
        let bias = Var::new(&[0.25f64, -1.0, 2.0], &Device::Cpu).unwrap();
        let weights = Tensor::new(&[[1f64, 2.0, 3.0], [-4.0, 5.0, 0.5]], &Device::Cpu).unwrap();
        let run = |y: Tensor| {
            let g = (&y * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let grad = |v: &Var| -> Vec<f64> {
                g.get(v.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            let y: Vec<f64> = y.flatten_all().unwrap().to_vec1().unwrap();
            (y, grad(&x), grad(&bias))
        };
        let own = run(add_bias(x.as_tensor(), bias.as_tensor()).unwrap());
        let reference = run(x.as_tensor().broadcast_add(bias.as_tensor()).unwrap());
        assert_eq!(own.0, vec![1.25, -3.0, 5.0, 0.75, 3.0, -4.0]);
        assert_eq!(own.2, vec![-3.0, 7.0, 3.5]);
        assert_eq!(own, reference);
    }

    #[test]
    fn add_bias_takes_strided_inputs() {
        let x = Tensor::new(&[[1f32, 2.0], [3.0, 4.0], [5.0, 6.0]], &Device::Cpu).unwrap();
        let xt = x.t().unwrap(); // [2, 3], not contiguous
        let bias = Tensor::new(&[10f32, 20.0, 30.0], &Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = add_bias(&xt, &bias).unwrap().to_vec2().unwrap();
        assert_eq!(y, vec![vec![11.0, 23.0, 35.0], vec![12.0, 24.0, 36.0]]);
    }

    #[test]
    fn add_bias_of_the_wrong_width_is_an_error() {
        let x = Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap();
        let bias = Tensor::ones(4, DType::F32, &Device::Cpu).unwrap();
        assert!(add_bias(&x, &bias).is_err());
    }

    #[test]
    fn streams_do_not_depend_on_creation_order() {
        let a = Params::new(7, DType::F64, &Device::Cpu);
        let x1 = a.get(5, "x", Init::Normal(1.0)).unwrap();
        let _y1 = a.get(5, "y", Init::Normal(1.0)).unwrap();
        let b = Params::new(7, DType::F64, &Device::Cpu);
        let _y2 = b.get(5, "y", Init::Normal(1.0)).unwrap();
        let x2 = b.get(5, "x", Init::Normal(1.0)).unwrap();
        assert_eq!(x1.to_vec1::<f64>().unwrap(), x2.to_vec1::<f64>().unwrap());
        let c = Params::new(8, DType::F64, &Device::Cpu);
        let x3 = c.get(5, "x", Init::Normal(1.0)).unwrap();
        assert_ne!(x1.to_vec1::<f64>().unwrap(), x3.to_vec1::<f64>().unwrap());
    }

    #[test]
    fn a_shape_conflict_is_an_error() {
        let p = Params::new(0, DType::F32, &Device::Cpu);
        p.get((2, 3), "w", Init::Const(0.0)).unwrap();
        assert!(matches!(
            p.get((3, 2), "w", Init::Const(0.0)),
            Err(ParamsError::ShapeConflict { .. })
        ));
        // Asking again with the same shape returns the same variable.
        assert_eq!(p.param_count(), 6);
        p.get((2, 3), "w", Init::Const(1.0)).unwrap();
        assert_eq!(p.param_count(), 6);
    }

    #[test]
    fn init_ranges_hold() {
        let p = Params::new(3, DType::F64, &Device::Cpu);
        let u: Vec<f64> = p
            .get(1000, "u", Init::Uniform(0.5))
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(u.iter().all(|x| x.abs() <= 0.5));
        assert!(u.iter().any(|x| x.abs() > 0.4));
        let n: Vec<f64> = p
            .get(4000, "n", Init::Normal(2.0))
            .unwrap()
            .to_vec1()
            .unwrap();
        let var = n.iter().map(|x| x * x).sum::<f64>() / n.len() as f64;
        assert!((var - 4.0).abs() < 0.4, "variance {var}");
    }

    #[test]
    fn linear_rejects_wrong_width() {
        let p = Params::new(0, DType::F32, &Device::Cpu);
        let l = Linear::new(&p.pp("l"), 3, 2).unwrap();
        let x = Tensor::ones((4, 5), DType::F32, &Device::Cpu).unwrap();
        let e = l.forward(&x).unwrap_err();
        assert!(e.to_string().contains("l: input has shape [4, 5]"), "{e}");
    }

    #[test]
    fn a_bound_linear_is_the_layer_in_value_and_gradient() {
        let p = Params::new(3, DType::F32, &Device::Cpu);
        let l = Linear::new(&p.pp("l"), 4, 4).unwrap();
        let x0 = Tensor::new(
            &[[0.5f32, -1.0, 2.0, 0.25], [1.0, 0.0, -0.5, 3.0]],
            &Device::Cpu,
        )
        .unwrap();
        // Three steps of a recurrence through the layer, then the weight's gradient.
        let run = |step: &dyn Fn(&Tensor) -> Tensor| {
            let mut x = x0.clone();
            for _ in 0..3 {
                x = step(&x).tanh().unwrap();
            }
            let grads = x.sum_all().unwrap().backward().unwrap();
            let g: Vec<Vec<f32>> = grads.get(&l.weight).unwrap().to_vec2().unwrap();
            (x.to_vec2::<f32>().unwrap(), g)
        };
        let bound = l.bind().unwrap();
        let plain = run(&|x| l.forward(x).unwrap());
        let fused = run(&|x| bound.forward(x).unwrap());
        // The forward pass is candle's product itself; the gradient's sum has the same terms
        // in the same order, but gemm may round a product it adds into its destination in
        // another last bit on some shapes.
        assert_eq!(fused.0, plain.0);
        for (a, b) in fused.1.iter().flatten().zip(plain.1.iter().flatten()) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} against {b}");
        }
        assert!(plain.1.iter().flatten().any(|g| *g != 0.0));
        let wide = Tensor::ones((2, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(bound.forward(&wide).is_err());
    }

    #[test]
    fn softplus_is_stable_and_exact() {
        let x = Tensor::new(&[-1000f64, -1.0, 0.0, 2.0, 1000.0], &Device::Cpu).unwrap();
        let y: Vec<f64> = softplus(&x).unwrap().to_vec1().unwrap();
        let direct = |v: f64| (1.0 + v.exp()).ln();
        assert!(y[0] >= 0.0 && y[0] < 1e-300);
        for (i, v) in [-1.0, 0.0, 2.0].iter().enumerate() {
            assert!((y[i + 1] - direct(*v)).abs() < 1e-12);
        }
        assert_eq!(y[4], 1000.0);
    }
}
