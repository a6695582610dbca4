//! Criterion benchmarks of the NTM workspace live in `benches/ntm.rs`; run them with
//! `cargo bench -p ntm-benches`. This library holds the shared set-up.
//!
//! Every random input comes from a seeded stream, so each run measures the same numbers.
//!
//! ```
//! let (memory, params, previous) = ntm_benches::addressing_inputs(2, 1, 16, 4).unwrap();
//! let w = ntm::addressing::address(&memory, &params, &previous).unwrap();
//! assert_eq!(w.dims(), &[2, 1, 16]);
//! ```

use candle_core::{DType, Device, Tensor};
use ntm::addressing::HeadParams;
use ntm::params::Init;

/// The seed of every input the benchmarks draw.
pub const SEED: u64 = 0;

fn draw(init: Init, name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
    let values = init.draw(SEED, name, shape.iter().product());
    Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(DType::F32)
}

/// `f32` values uniform in `[0, 1]` on the CPU, from the stream `name` of [`SEED`].
pub fn uniform(shape: &[usize], name: &str) -> candle_core::Result<Tensor> {
    draw(Init::Uniform(0.5), name, shape)? + 0.5
}

/// `f32` standard normal values on the CPU, from the stream `name` of [`SEED`].
pub fn normal(shape: &[usize], name: &str) -> candle_core::Result<Tensor> {
    draw(Init::Normal(1.0), name, shape)
}

/// Random activated head parameters and a memory for `b` batch elements of `h` heads over an
/// `n x m` memory, with three shifts, in `f32` on the CPU.
pub fn addressing_inputs(
    b: usize,
    h: usize,
    n: usize,
    m: usize,
) -> candle_core::Result<(Tensor, HeadParams, Tensor)> {
    let memory = normal(&[b, n, m], "memory")?;
    let shift = uniform(&[b, h, 3], "shift")?;
    let shift = shift.broadcast_div(&shift.sum_keepdim(2)?)?;
    let previous = uniform(&[b, h, n], "previous")?;
    let previous = previous.broadcast_div(&previous.sum_keepdim(2)?)?;
    let params = HeadParams {
        key: normal(&[b, h, m], "key")?,
        beta: (uniform(&[b, h], "beta")? * 10.0)?,
        gate: uniform(&[b, h], "gate")?,
        shift,
        gamma: (uniform(&[b, h], "gamma")? + 1.0)?,
    };
    Ok((memory, params, previous))
}

#[cfg(test)]
mod tests {
    use super::{addressing_inputs, normal, uniform};

    #[test]
    fn inputs_are_the_same_on_every_call() {
        let values = |t: candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(
            values(normal(&[3, 4], "x").unwrap()),
            values(normal(&[3, 4], "x").unwrap())
        );
        let u = values(uniform(&[64], "u").unwrap());
        assert!(u.iter().all(|x| (0.0..=1.0).contains(x)));
        assert_ne!(u, values(uniform(&[64], "v").unwrap()));
        let (a, _, _) = addressing_inputs(2, 1, 8, 3).unwrap();
        let (b, _, _) = addressing_inputs(2, 1, 8, 3).unwrap();
        assert_eq!(values(a), values(b));
    }
}
