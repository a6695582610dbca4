//! A weight matrix applied at every time step, whose gradient is summed beside candle's graph.
//!
//! In candle's graph every use of a tensor gets a gradient of its own, zero-filled, computed and
//! then added to the sum of the others: for an LSTM's weight, a matrix the size of the weight
//! per step and per sequence. [`StepWeight`] binds the weight once per sequence; each step's
//! product `x W` is an op whose backward passes `x`'s gradient on as candle would and adds
//! `xᵀ dy` straight into one sum (a matrix product that reads its destination), and the binding
//! hands that sum to the weight once, when candle's backward pass reaches it, after every step.
//!
//! A linear layer's weight is stored `[out, in]` and multiplied as its transpose.
//! [`StepWeight::bind_transposed`] binds the stored weight itself and keeps the sum in its
//! layout, so that the gradient reaches it whole and contiguous: bound as a transposed view, the
//! gradient passes through candle's transpose, whose backward adds it to a zero-filled matrix
//! element by element at the view's strides, which took a fifth of the LSTM baseline's training
//! time.
//!
//! The sum is the one candle forms, term for term and in the same order. Whether each product
//! rounds as candle's does depends on the path gemm takes for the shape: at the NTMs' sizes
//! training losses stay the same to the bit, on some tiny shapes a last bit differs.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Storage, Tensor};

use multiversion::multiversion;

use crate::storage::{cpu_slice, storage};

/// The bound weight and the running sum of its gradient over the steps.
#[derive(Debug)]
struct Cell {
    /// The matrix `[k, n]` each step multiplies by.
    weight: Tensor,
    /// Whether the bound tensor is `weight`'s transpose `[n, k]`, and the sum kept in its
    /// layout.
    transposed: bool,
    grad: Mutex<Option<Grad>>,
}

/// A gradient sum of either float type.
#[derive(Debug)]
enum Grad {
    F32(Sum<f32>),
    F64(Sum<f64>),
}

/// The sum `[k, n]` (`[n, k]` for a transposed binding) of the steps' products `xᵀ dy`, and the
/// steps of one or two rows not yet added to it.
///
/// A step of one or two rows (a batch of one or two sequences) is a rank-one or rank-two update
/// of the whole sum, one multiply-add per element, so that adding each step as it comes reads
/// and writes the whole matrix once per step: for a large weight, from main memory. Such steps
/// wait instead, and are added together, block of rows by block of rows, each block through
/// every waiting step while it stays in the cache. Each element gets the arithmetic gemm gives
/// it for such a step (its rank-one and rank-two path: `x0 dy0 + sum`, then `x1 dy1 + that`,
/// each product and sum rounded, never fused) in the same order, so the sum is the same to the
/// last bit.
#[derive(Debug)]
struct Sum<T> {
    sum: Vec<T>,
    /// `(k, n)`: the weight's shape.
    dims: (usize, usize),
    /// Whether the sum is kept `[n, k]`, in the layout of the tensor a transposed binding bound.
    transposed: bool,
    /// Each waiting step's `m`, `x [m, k]` and `dy [m, n]`, contiguous, in the order they came.
    waiting: Vec<(usize, Vec<T>, Vec<T>)>,
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
        Self::bind_as(weight, false)
    }

    /// Binds the transpose of `weight` (`[n, k]`, as a linear layer stores it): `matmul(x)` is
    /// `x.matmul(&weight.t())`, and `weight` receives its gradient as a contiguous `[n, k]`
    /// matrix, without a transpose in candle's graph.
    pub fn bind_transposed(weight: &Tensor) -> candle_core::Result<Self> {
        Self::bind_as(weight, true)
    }

    fn bind_as(bound: &Tensor, transposed: bool) -> candle_core::Result<Self> {
        if bound.rank() != 2 || !matches!(bound.dtype(), DType::F32 | DType::F64) {
            candle_core::bail!(
                "step weight: a 2-D f32 or f64 matrix, got {:?} {:?}",
                bound.dims(),
                bound.dtype()
            )
        }
        let cell = Arc::new(Cell {
            weight: if transposed {
                bound.t()?
            } else {
                bound.clone()
            },
            transposed,
            grad: Mutex::new(None),
        });
        let token = bound.apply_op1(Bind(cell.clone()))?;
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
            Some(Grad::F32(g)) => Some(Tensor::from_vec(g.finish(), dims, dev)?),
            Some(Grad::F64(g)) => Some(Tensor::from_vec(g.finish(), dims, dev)?),
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
    fn slot(grad: &mut Option<Grad>, dims: (usize, usize), transposed: bool) -> &mut Sum<Self>;
}

/// `Summed` for a float type and the `Grad` variant that holds it.
macro_rules! summed {
    ($t:ty, $variant:ident) => {
        impl Summed for $t {
            fn slot(
                grad: &mut Option<Grad>,
                dims: (usize, usize),
                transposed: bool,
            ) -> &mut Sum<$t> {
                if !matches!(grad, Some(Grad::$variant(_))) {
                    *grad = Some(Grad::$variant(Sum {
                        sum: vec![0.0; dims.0 * dims.1],
                        dims,
                        transposed,
                        waiting: Vec::new(),
                    }));
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

/// Rows of at most this many elements make a block of [`Sum::flush`]: 16 KiB of `f32`, which
/// stay in the first-level cache while every waiting step passes over them.
const BLOCK: usize = 4096;

impl<T: Summed> Sum<T> {
    /// Adds one step's `x [m, k]` and `dy [m, n]`, for the sum's `(k, n)`: at once when
    /// `m > 2`, after the steps waiting before it; otherwise it waits.
    fn add(&mut self, x: &[T], dy: &[T], m: usize) -> candle_core::Result<()> {
        let (k, n) = self.dims;
        if x.len() != m * k || dy.len() != m * n {
            candle_core::bail!("step weight: a step that does not fit the sum [{k}, {n}]")
        }
        if m <= 2 {
            self.waiting.push((m, x.to_vec(), dy.to_vec()));
            return Ok(());
        }
        self.flush();
        gemm_into(&mut self.sum, x, dy, (m, k, n), self.transposed)
    }

    /// Adds the waiting steps, in the order they came, one block of the sum's rows at a time.
    /// Every waiting step fits the sum: [`Sum::add`] checked it.
    fn flush(&mut self) {
        let ((k, n), transposed) = (self.dims, self.transposed);
        // The length of the sum's rows.
        let across = if transposed { k } else { n };
        let per_block = (BLOCK / across.max(1)).max(1);
        for (b, block) in self.sum.chunks_mut(per_block * across.max(1)).enumerate() {
            add_waiting(
                block,
                b * per_block,
                across,
                &self.waiting,
                (k, n),
                transposed,
            );
        }
        self.waiting.clear();
    }

    /// The sum, with every waiting step added.
    fn finish(mut self) -> Vec<T> {
        self.flush();
        self.sum
    }
}

/// Adds every waiting step to `block`, rows `first..` of the sum, each row `across` long: for
/// each step in turn, `row[c] = x_r dy_c + row[c]` (in `[k, n]` layout, row `r` of `k`) or
/// `row[c] = x_c dy_r + row[c]` (transposed), the second of a two-row step added after the
/// first.
#[multiversion(targets("x86_64+avx2+fma"))]
fn add_waiting<T: Summed>(
    block: &mut [T],
    first: usize,
    across: usize,
    waiting: &[(usize, Vec<T>, Vec<T>)],
    (k, n): (usize, usize),
    transposed: bool,
) {
    for (m, x, dy) in waiting {
        for t in 0..*m {
            let (x, dy) = (&x[t * k..(t + 1) * k], &dy[t * n..(t + 1) * n]);
            // Along the rows, the factor of each row; across, the vector of each.
            let (down, along_row) = if transposed { (dy, x) } else { (x, dy) };
            for (r, row) in block.chunks_exact_mut(across).enumerate() {
                let f = down[first + r];
                for (v, &a) in row.iter_mut().zip(along_row) {
                    *v = a * f + *v;
                }
            }
        }
    }
}

/// `sum += xᵀ dy` for `x [m, k]` and `dy [m, n]`, the sum `[k, n]` (`[n, k]` when
/// `transposed`), with the strides of candle's `x.t().matmul(dy)`, reading the destination
/// where candle adds a fresh product to the sum.
// The one unsafe call: gemm's product into a destination it reads, which candle does not offer
// (its matmul always writes a fresh, zero-filled output).
#[allow(unsafe_code)]
fn gemm_into<T: Summed>(
    sum: &mut [T],
    x: &[T],
    dy: &[T],
    (m, k, n): (usize, usize, usize),
    transposed: bool,
) -> candle_core::Result<()> {
    if x.len() != m * k || dy.len() != m * n || sum.len() != k * n {
        candle_core::bail!("step weight: a gradient that does not fit its sum")
    }
    let parallelism = match candle_core::utils::get_num_threads() {
        t if t > 1 => gemm::Parallelism::Rayon(t),
        _ => gemm::Parallelism::None,
    };
    let (dst_cs, dst_rs) = if transposed {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    // SAFETY: the three buffers hold k x m, m x n and k x n elements at the strides given
    // (checked above), and `sum` is borrowed mutably, alone.
    unsafe {
        gemm::gemm(
            k,
            n,
            m,
            sum.as_mut_ptr(),
            dst_cs,
            dst_rs,
            true,
            x.as_ptr(),
            k as isize,
            1,
            dy.as_ptr(),
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

impl Apply {
    /// Adds `xᵀ grad` to the sum.
    fn accumulate<T: Summed>(&self, x: &Tensor, grad: &Tensor) -> candle_core::Result<()> {
        let x = x.contiguous()?;
        let (m, k) = x.dims2()?;
        let n = grad.dim(1)?;
        let (sx, lx) = x.storage_and_layout();
        let (sg, lg) = grad.storage_and_layout();
        let (xs, gs) = (cpu_slice::<T>(&sx, lx)?, cpu_slice::<T>(&sg, lg)?);
        let mut slot = self.0.grad.lock().unwrap_or_else(|e| e.into_inner());
        T::slot(&mut slot, (k, n), self.0.transposed).add(xs, gs, m)
    }
}
