//! The temporal link matrix, the precedence weighting and the directional read weightings
//! (Graves et al. 2016, Methods, "Temporal memory linkage").

use candle_core::Tensor;

use crate::{dims3, expect, DncError, Result};

fn dims4(argument: &'static str, t: &Tensor) -> Result<(usize, usize, usize, usize)> {
    match *t.dims() {
        [a, b, c, d] => Ok((a, b, c, d)),
        _ => Err(DncError::Shape {
            argument,
            got: t.dims().to_vec(),
            expected: "a rank-4 tensor".into(),
        }),
    }
}

/// The link matrices after a write: `L[i, j] = (1 - w[i] - w[j]) L[i, j] + w[i] p[j]` with a zero
/// diagonal. `L[i, j]` is the degree to which row `i` was written right after row `j`.
///
/// `links` is `[B, Wh, N, N]` (one matrix per write head), `precedence` the precedence
/// weightings before this write `[B, Wh, N]`, `write_weights` this step's `[B, Wh, N]`.
pub fn update_links(links: &Tensor, precedence: &Tensor, write_weights: &Tensor) -> Result<Tensor> {
    let (b, heads, n) = dims3("write_weights", write_weights)?;
    expect("links", links, &[b, heads, n, n])?;
    expect("precedence", precedence, &[b, heads, n])?;
    let w_i = write_weights.unsqueeze(3)?; // [B, Wh, N, 1]
    let w_j = write_weights.unsqueeze(2)?; // [B, Wh, 1, N]
    let keep = w_i.affine(-1.0, 1.0)?.broadcast_sub(&w_j)?; // 1 - w[i] - w[j]
    let new = w_i.broadcast_mul(&precedence.unsqueeze(2)?)?; // w[i] p[j]
    let off_diagonal = Tensor::eye(n, links.dtype(), links.device())?.affine(-1.0, 1.0)?;
    Ok(((keep * links)? + new)?.broadcast_mul(&off_diagonal)?)
}

/// The precedence weightings after a write: `p = (1 - sum_i w[i]) p + w`, the degree to which
/// each row was the last one written. `precedence` and `write_weights` are `[B, Wh, N]`.
pub fn update_precedence(precedence: &Tensor, write_weights: &Tensor) -> Result<Tensor> {
    let (b, heads, n) = dims3("write_weights", write_weights)?;
    expect("precedence", precedence, &[b, heads, n])?;
    let unwritten = write_weights.sum_keepdim(2)?.affine(-1.0, 1.0)?;
    Ok((precedence.broadcast_mul(&unwritten)? + write_weights)?)
}

/// The forward and backward weightings of every read head through every write head's links:
/// `f = L w` (where the rows read were followed by writes) and `b = L^T w` (where they were
/// preceded), from the previous read weightings `read_weights` `[B, R, N]` and the updated
/// `links` `[B, Wh, N, N]`. Returns `(forward, backward)`, each `[B, R, Wh, N]`.
pub fn directional_weights(links: &Tensor, read_weights: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, heads, n, _) = dims4("links", links)?;
    expect("links", links, &[b, heads, n, n])?;
    let (_, r, _) = dims3("read_weights", read_weights)?;
    expect("read_weights", read_weights, &[b, r, n])?;
    let w = read_weights
        .unsqueeze(1)?
        .broadcast_as((b, heads, r, n))?
        .contiguous()?; // [B, Wh, R, N]
                        // f[r, i] = sum_j L[i, j] w[r, j];  b[r, j] = sum_i w[r, i] L[i, j]
    let forward = w.matmul(&links.transpose(2, 3)?)?;
    let backward = w.matmul(links)?;
    Ok((forward.transpose(1, 2)?, backward.transpose(1, 2)?))
}

/// The read weightings `w = pi_c c + sum_h (pi_b[h] b[h] + pi_f[h] f[h])`.
///
/// `content` is `[B, R, N]`, `forward` and `backward` `[B, R, Wh, N]` (from
/// [`directional_weights`]), and `modes` `[B, R, 2 Wh + 1]` a distribution per read head over the
/// backward mode of each write head, then the forward mode of each, then the content mode.
pub fn read_weighting(
    content: &Tensor,
    forward: &Tensor,
    backward: &Tensor,
    modes: &Tensor,
) -> Result<Tensor> {
    let (b, r, n) = dims3("content", content)?;
    let (_, _, heads, _) = dims4("forward", forward)?;
    expect("forward", forward, &[b, r, heads, n])?;
    expect("backward", backward, &[b, r, heads, n])?;
    expect("modes", modes, &[b, r, 2 * heads + 1])?;
    let backward_mode = modes.narrow(2, 0, heads)?.unsqueeze(3)?;
    let forward_mode = modes.narrow(2, heads, heads)?.unsqueeze(3)?;
    let content_mode = modes.narrow(2, 2 * heads, 1)?;
    let directed =
        (backward.broadcast_mul(&backward_mode)? + forward.broadcast_mul(&forward_mode)?)?;
    Ok((content.broadcast_mul(&content_mode)? + directed.sum(2)?)?)
}
