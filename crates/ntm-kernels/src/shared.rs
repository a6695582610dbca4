//! A weight matrix applied at every time step, whose gradient is summed beside candle's graph.
//!
//! In candle's graph every use of a tensor gets a gradient of its own, zero-filled, computed and
//! then added to the sum of the others: for an LSTM's weight, a matrix the size of the weight
//! per step and per sequence. [`StepWeight`] binds the weight once per sequence; each step's
//! product `x W` is an op whose backward passes `x`'s gradient on as candle would and adds
//! `xᵀ dy` straight into one sum (a matrix product that reads its destination), and the binding
//! hands that sum to the weight once, when candle's backward pass reaches it, after every step.
//!
//! The sum is the one candle forms, term for term and in the same order. Whether each product
//! rounds as candle's does depends on the path gemm takes for the shape: at the NTMs' sizes
//! training losses stay the same to the bit, on some tiny shapes a last bit differs.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Storage, Tensor};

use crate::storage::{cpu_slice, storage};

/// The bound weight and the running sum of its gradient over the steps.
#[derive(Debug)]
struct Cell {
    weight: Tensor,
    grad: Mutex<Option<Grad>>,
}

/// A gradient sum of either float type.
#[derive(Debug)]
enum Grad {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// A weight `[k, n]` bound for the steps of one sequence: [`StepWeight::matmul`] is `x.matmul(w)`
/// with the weight's gradient summed over the steps beside candle's graph.
///
/// Bind a fresh one for every forward pass; one backward pass through the steps hands the
/// weight its gradient.
#[derive(Debug, Clone)]
pub struct StepWeight {
    cell: Arc<Cell>,
    /// A one-element tensor that every step's product depends on, so that the binding's
    /// backward runs after all of theirs.
    token: Tensor,
}

impl StepWeight {
    /// Binds `weight` (`[k, n]`, `f32` or `f64`, on the CPU, possibly a transposed view).
    pub fn bind(weight: &Tensor) -> candle_core::Result<Self> {
        if weight.rank() != 2 || !matches!(weight.dtype(), DType::F32 | DType::F64) {
            candle_core::bail!(
                "step weight: a 2-D f32 or f64 matrix, got {:?} {:?}",
                weight.dims(),
                weight.dtype()
            )
        }
        let cell = Arc::new(Cell {
            weight: weight.clone(),
            grad: Mutex::new(None),
        });
        let token = weight.apply_op1(Bind(cell.clone()))?;
        Ok(Self { cell, token })
    }

    /// `x.matmul(w)` for `x` `[m, k]`.
    pub fn matmul(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.apply_op2(&self.token, Apply(self.cell.clone()))
    }
}

/// The binding: its output is the token; its backward hands the weight the summed gradient.
struct Bind(Arc<Cell>);

impl CustomOp1 for Bind {
    fn name(&self) -> &'static str {
        "step-weight-bind"
    }

    fn cpu_fwd(&self, s: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok(match s.dtype() {
            DType::F64 => (storage(vec![0f64]), Shape::from(1)),
            _ => (storage(vec![0f32]), Shape::from(1)),
        })
    }

    fn bwd(&self, arg: &Tensor, _: &Tensor, _: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = self.0.grad.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (dims, dev) = (arg.dims().to_vec(), arg.device());
        Ok(match grad {
            None => None,
            Some(Grad::F32(g)) => Some(Tensor::from_vec(g, dims, dev)?),
            Some(Grad::F64(g)) => Some(Tensor::from_vec(g, dims, dev)?),
        })
    }
}

/// One step's product `x w`.
struct Apply(Arc<Cell>);

impl CustomOp2 for Apply {
    fn name(&self) -> &'static str {
        "step-weight-matmul"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let w = &self.0.weight;
        let (m, k) = l.shape().dims2()?;
        let (kw, n) = w.dims2()?;
        if k != kw {
            candle_core::bail!("step weight: x is [{m}, {k}], the weight [{kw}, {n}]")
        }
        let (ws, wl) = w.storage_and_layout();
        let Storage::Cpu(ws) = &*ws else {
            candle_core::bail!("step weight: the weight must live on the CPU")
        };
        // candle's own product, so the forward pass is the matmul's to the bit.
        Ok((s.matmul(ws, (1, m, n, k), l, wl)?, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        token: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let w = &self.0.weight;
        // As candle's matmul passes it on.
        let dx = grad.matmul(&w.t()?)?;
        let grad = grad.contiguous()?;
        match x.dtype() {
            DType::F32 => self.accumulate::<f32>(x, &grad)?,
            DType::F64 => self.accumulate::<f64>(x, &grad)?,
            dt => candle_core::bail!("step weight: {dt:?}"),
        }
        Ok((Some(dx), Some(token.zeros_like()?)))
    }
}

/// The float types the sum holds.
trait Summed: candle_core::WithDType + num_traits::One {
    fn slot(grad: &mut Option<Grad>, len: usize) -> &mut Vec<Self>;
}

/// `Summed` for a float type and the `Grad` variant that holds it.
macro_rules! summed {
    ($t:ty, $variant:ident) => {
        impl Summed for $t {
            fn slot(grad: &mut Option<Grad>, len: usize) -> &mut Vec<$t> {
                if !matches!(grad, Some(Grad::$variant(_))) {
                    *grad = Some(Grad::$variant(vec![0.0; len]));
                }
                match grad {
                    Some(Grad::$variant(g)) => g,
                    _ => unreachable!("set above"),
                }
            }
        }
    };
}

summed!(f32, F32);
summed!(f64, F64);

impl Apply {
    /// Adds `xᵀ grad` to the sum.
    // The one unsafe call: gemm's product into a destination it reads, which candle does not
    // offer (its matmul always writes a fresh, zero-filled output).
    #[allow(unsafe_code)]
    fn accumulate<T: Summed>(&self, x: &Tensor, grad: &Tensor) -> candle_core::Result<()> {
        let x = x.contiguous()?;
        let (m, k) = x.dims2()?;
        let n = grad.dim(1)?;
        let (sx, lx) = x.storage_and_layout();
        let (sg, lg) = grad.storage_and_layout();
        let (xs, gs) = (cpu_slice::<T>(&sx, lx)?, cpu_slice::<T>(&sg, lg)?);
        if xs.len() != m * k || gs.len() != m * n {
            candle_core::bail!("step weight: x [{m}, {k}] and its gradient of {}", gs.len())
        }
        let mut slot = self.0.grad.lock().unwrap_or_else(|e| e.into_inner());
        let sum = T::slot(&mut slot, k * n);
        let parallelism = match candle_core::utils::get_num_threads() {
            t if t > 1 => gemm::Parallelism::Rayon(t),
            _ => gemm::Parallelism::None,
        };
        // `sum[k, n] += xᵀ grad`, with the strides of candle's `x.t().matmul(grad)`, reading
        // the destination where candle adds a fresh product to the sum.
        // SAFETY: the three buffers hold k x m, m x n and k x n elements at the strides given,
        // and `sum` is borrowed mutably, alone.
        unsafe {
            gemm::gemm(
                k,
                n,
                m,
                sum.as_mut_ptr(),
                1,
                n as isize,
                true,
                xs.as_ptr(),
                k as isize,
                1,
                gs.as_ptr(),
                1,
                n as isize,
                T::one(),
                T::one(),
                false,
                false,
                false,
                parallelism,
            )
        };
        Ok(())
    }
}
