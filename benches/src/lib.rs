//! Criterion benchmarks of the NTM workspace live in `benches/ntm.rs`; run them with
//! `cargo bench -p ntm-benches`. This library holds the shared set-up.
//!
//! ```
//! let (memory, params, previous) = ntm_benches::addressing_inputs(2, 1, 16, 4).unwrap();
//! let w = ntm::addressing::address(&memory, &params, &previous).unwrap();
//! assert_eq!(w.dims(), &[2, 1, 16]);
//! ```

use candle_core::{DType, Device, Tensor};
use ntm::addressing::HeadParams;

/// Random activated head parameters and a memory for `b` batch elements of `h` heads over an
/// `n x m` memory, with three shifts, in `f32` on the CPU.
pub fn addressing_inputs(
    b: usize,
    h: usize,
    n: usize,
    m: usize,
) -> candle_core::Result<(Tensor, HeadParams, Tensor)> {
    let dev = Device::Cpu;
    let unit = |shape: &[usize]| Tensor::rand(0f32, 1f32, shape, &dev);
    let memory = Tensor::randn(0f32, 1f32, (b, n, m), &dev)?;
    let shift = unit(&[b, h, 3])?;
    let shift = shift.broadcast_div(&shift.sum_keepdim(2)?)?;
    let previous = unit(&[b, h, n])?;
    let previous = previous.broadcast_div(&previous.sum_keepdim(2)?)?;
    let params = HeadParams {
        key: Tensor::randn(0f32, 1f32, (b, h, m), &dev)?,
        beta: (unit(&[b, h])? * 10.0)?,
        gate: unit(&[b, h])?,
        shift,
        gamma: (unit(&[b, h])? + 1.0)?,
    };
    Ok((memory, params, previous.to_dtype(DType::F32)?))
}
