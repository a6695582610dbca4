//! The LSTM cell update: one fused op on the CPU, a composition of candle operations as its
//! reference and elsewhere.

use candle_core::Tensor;

use crate::{ControllerError, Result};

/// The cell size `n` of gates `z` `[B, 4n]` and a cell state `c` `[B, n]`.
fn size_of(z: &Tensor, c: &Tensor) -> Result<usize> {
    match (z.dims(), c.dims()) {
        ([bz, g], [bc, n]) if bz == bc && *g == 4 * n && *n > 0 => Ok(*n),
        _ => Err(ControllerError::CellShape {
            gates: z.dims().to_vec(),
            cell: c.dims().to_vec(),
        }),
    }
}

/// One LSTM cell update: gate pre-activations `z` `[B, 4n]`, ordered input, forget, cell,
/// output, and the previous cell state `c` `[B, n]`, to the new hidden and cell states.
///
/// Runs as one fused op on the CPU in `f32` and `f64` ([`ntm_kernels::lstm_cell`]: one pass, its
/// own backward, vectorisable exponentials), and as [`lstm_cell_unfused`] otherwise or with the
/// kernels switched off; the two agree to rounding and have the same gradients.
pub fn lstm_cell(z: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
    if ntm_kernels::runs_on(z) {
        size_of(z, c)?;
        Ok(ntm_kernels::lstm_cell(z, c)?)
    } else {
        lstm_cell_unfused(z, c)
    }
}

/// [`lstm_cell`] composed of candle operations: the reference for the fused op, and the path
/// on devices other than the CPU.
pub fn lstm_cell_unfused(z: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
    let n = size_of(z, c)?;
    let gates = ntm_params::sigmoid(z)?;
    let input = gates.narrow(1, 0, n)?;
    let forget = gates.narrow(1, n, n)?;
    let cell = z.narrow(1, 2 * n, n)?.tanh()?;
    let output = gates.narrow(1, 3 * n, n)?;
    let c_next = ((forget * c)? + (input * cell)?)?;
    let h_next = (output * c_next.tanh()?)?;
    Ok((h_next, c_next))
}
