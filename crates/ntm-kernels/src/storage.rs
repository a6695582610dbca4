//! Getting at the elements of CPU tensors and storages.

use std::borrow::Cow;

use candle_core::{CpuStorage, Layout, Storage, Tensor, WithDType};

/// The elements of a contiguous CPU storage under `l`; an error for a strided layout. The one
/// way the kernels borrow their inputs.
pub(crate) fn slice<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("ntm kernels: inputs must be contiguous"),
    }
}

/// [`slice`] of the storage behind a tensor's storage guard, which must live on the CPU.
pub(crate) fn cpu_slice<'a, T: WithDType>(
    s: &'a Storage,
    l: &Layout,
) -> candle_core::Result<&'a [T]> {
    match s {
        Storage::Cpu(cpu) => slice(cpu, l),
        _ => candle_core::bail!("ntm kernels: the tensors must live on the CPU"),
    }
}

/// The elements of a 2-D CPU storage in row-major order: borrowed when its layout is
/// contiguous, copied when it is strided (a narrow or a broadcast).
pub(crate) fn elements<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<Cow<'a, [T]>> {
    if l.is_contiguous() {
        return slice(s, l).map(Cow::Borrowed);
    }
    let data = T::cpu_storage_as_slice(s)?;
    let (rows, cols) = l.shape().dims2()?;
    let (start, stride) = (l.start_offset(), l.stride());
    if stride[1] == 1 {
        // Rows of a wider matrix (the cell state is a column block of the previous output).
        let mut out = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            let begin = start + r * stride[0];
            out.extend_from_slice(&data[begin..begin + cols]);
        }
        return Ok(Cow::Owned(out));
    }
    Ok(Cow::Owned(
        (0..rows)
            .flat_map(|r| (0..cols).map(move |k| data[start + r * stride[0] + k * stride[1]]))
            .collect(),
    ))
}

/// A vector as CPU storage.
pub(crate) fn storage<T: WithDType>(data: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(data)
}

/// All elements of a tensor, in row-major order.
pub(crate) fn tensor_vec<T: WithDType>(t: &Tensor) -> candle_core::Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
}
