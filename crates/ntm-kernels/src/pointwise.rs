//! A bias added to every row, and clipping: one graph node each, with their own backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor, WithDType};

use crate::storage::{cpu_slice, slice, tensor_vec};

/// `x [B, k] + bias [k]`, the bias added to every row, as one custom op whose backward sums the
/// gradient's columns in one pass (the backward of candle's `broadcast_add` reduces over the
/// batch with a general strided reduction). Strided inputs are copied first. CPU only, `f32` or
/// `f64`, both of one dtype; a bias of another width is an error.
pub fn add_bias(x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    // A no-op for the matrix products this follows; a copy for a strided view.
    x.contiguous()?.apply_op2(&bias.contiguous()?, AddBias)
}

/// `x` clipped to `[-bound, bound]` as one custom op; the gradient passes where
/// `|x| <= bound` and is zero elsewhere (candle's `clamp` is a maximum and a minimum, whose
/// backward passes build comparison masks and zero tensors). CPU only, `f32` or `f64`.
pub fn clip(x: &Tensor, bound: f64) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Clip(bound))
}

struct AddBias;

impl AddBias {
    fn forward<T: WithDType>(
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
    ) -> candle_core::Result<Vec<T>> {
        let (x, bias) = (slice::<T>(s1, l1)?, slice::<T>(s2, l2)?);
        let mut out = x.to_vec();
        for row in out.chunks_exact_mut(bias.len().max(1)) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
        Ok(out)
    }

    /// The bias gradient: the column sums of `grad [batch, k]`.
    fn column_sums<T: WithDType>(grad: &Tensor) -> candle_core::Result<Tensor> {
        let k = grad.dim(1)?;
        let grad = grad.contiguous()?;
        let (storage, layout) = grad.storage_and_layout();
        let mut sums = vec![T::zero(); k];
        for row in cpu_slice::<T>(&storage, layout)?.chunks_exact(k.max(1)) {
            for (s, &g) in sums.iter_mut().zip(row) {
                *s += g;
            }
        }
        Tensor::from_vec(sums, k, grad.device())
    }
}

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "ntm-add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use CpuStorage as S;
        let (_, k) = l1.shape().dims2()?;
        if l2.shape().dims() != [k] {
            candle_core::bail!(
                "add_bias: input {:?} and bias {:?} do not match",
                l1.shape(),
                l2.shape()
            )
        }
        let out = match (s1, s2) {
            (S::F32(_), S::F32(_)) => S::F32(Self::forward((s1, l1), (s2, l2))?),
            (S::F64(_), S::F64(_)) => S::F64(Self::forward((s1, l1), (s2, l2))?),
            _ => candle_core::bail!("add_bias: only f32 and f64 of one type are supported"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let bias_grad = match grad.dtype() {
            DType::F32 => Self::column_sums::<f32>(grad)?,
            DType::F64 => Self::column_sums::<f64>(grad)?,
            dt => candle_core::bail!("add_bias: unsupported dtype {dt:?}"),
        };
        Ok((Some(grad.clone()), Some(bias_grad)))
    }
}

struct Clip(f64);

impl Clip {
    fn map<T: WithDType + PartialOrd>(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<Vec<T>> {
        let (lo, hi) = (T::from_f64(-self.0), T::from_f64(self.0));
        Ok(slice::<T>(storage, layout)?
            .iter()
            .map(|&v| {
                if v < lo {
                    lo
                } else if v > hi {
                    hi
                } else {
                    v
                }
            })
            .collect())
    }
}

impl CustomOp1 for Clip {
    fn name(&self) -> &'static str {
        "ntm-clip"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use CpuStorage as S;
        let out = match storage {
            S::F32(_) => S::F32(self.map(storage, layout)?),
            S::F64(_) => S::F64(self.map(storage, layout)?),
            _ => candle_core::bail!("clip: only f32 and f64 are supported"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        fn run<T: WithDType + PartialOrd>(
            bound: f64,
            x: &Tensor,
            grad: &Tensor,
        ) -> candle_core::Result<Tensor> {
            let (lo, hi) = (T::from_f64(-bound), T::from_f64(bound));
            let g: Vec<T> = tensor_vec::<T>(x)?
                .into_iter()
                .zip(tensor_vec::<T>(grad)?)
                .map(|(v, g)| if v < lo || v > hi { T::zero() } else { g })
                .collect();
            Tensor::from_vec(g, x.shape(), x.device())
        }
        match x.dtype() {
            DType::F32 => run::<f32>(self.0, x, grad).map(Some),
            DType::F64 => run::<f64>(self.0, x, grad).map(Some),
            dt => candle_core::bail!("clip: unsupported dtype {dt:?}"),
        }
    }
}
