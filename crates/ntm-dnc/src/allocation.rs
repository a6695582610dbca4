//! Usage, retention and dynamic allocation (Graves et al. 2016, Methods, "Dynamic memory
//! allocation").

use candle_core::Tensor;

use crate::{dims2, dims3, expect, Result};

/// Usage is mapped to `ALLOCATION_EPS + (1 - ALLOCATION_EPS) u` before the allocation weighting
/// is formed, as in DeepMind's implementation: every factor of the cumulative product is then
/// positive, so a fully used row still passes a (tiny) gradient to the rows sorted after it.
pub const ALLOCATION_EPS: f64 = 1e-6;

/// The retention vector `psi = prod_r (1 - f_r w_r)`: how much of each row survives the frees of
/// the read heads. `free_gates` is `[B, R]`, `read_weights` the previous read weightings
/// `[B, R, N]`; returns `[B, N]`.
pub fn retention(free_gates: &Tensor, read_weights: &Tensor) -> Result<Tensor> {
    let (b, r, _) = dims3("read_weights", read_weights)?;
    expect("free_gates", free_gates, &[b, r])?;
    // 1 - f_r w_r, [B, R, N]
    let kept = read_weights
        .broadcast_mul(&free_gates.unsqueeze(2)?)?
        .affine(-1.0, 1.0)?;
    let mut psi = kept.narrow(1, 0, 1)?.squeeze(1)?;
    for h in 1..r {
        psi = (psi * kept.narrow(1, h, 1)?.squeeze(1)?)?;
    }
    Ok(psi)
}

/// The usage vector after the previous step's writes and this step's frees:
/// `u = (u + w - u w) psi`, the write term applied for each write head in turn.
///
/// `usage` is `[B, N]`, `write_weights` the previous write weightings `[B, Wh, N]`, `free_gates`
/// `[B, R]` and `read_weights` the previous read weightings `[B, R, N]`.
///
/// **Stop-gradient:** no gradient flows back through `write_weights` here, as in DeepMind's
/// implementation. The write weighting keeps its gradient through the memory it wrote and the
/// links it made; only its record in the usage is taken as a constant. Gradients do flow
/// through `usage`, the free gates and the read weightings. (The tests check both sides: finite
/// differences that hold the previous write weightings fixed agree with the gradient, and ones
/// that do not, disagree.)
pub fn update_usage(
    usage: &Tensor,
    write_weights: &Tensor,
    free_gates: &Tensor,
    read_weights: &Tensor,
) -> Result<Tensor> {
    let (b, n) = dims2("usage", usage)?;
    let (_, heads, _) = dims3("write_weights", write_weights)?;
    expect("write_weights", write_weights, &[b, heads, n])?;
    let (_, r, _) = dims3("read_weights", read_weights)?;
    expect("read_weights", read_weights, &[b, r, n])?;
    let written = write_weights.detach();
    let mut u = usage.clone();
    for h in 0..heads {
        let w = written.narrow(1, h, 1)?.squeeze(1)?;
        // u + w - u w = u + (1 - u) w
        u = (&u + (u.affine(-1.0, 1.0)? * w)?)?;
    }
    Ok((u * retention(free_gates, read_weights)?)?)
}

/// The exclusive cumulative product along the last dimension:
/// `out[.., j] = prod_{i < j} x[.., i]`, so `out[.., 0] = 1`.
///
/// candle has no cumulative product, and `exp(cumsum(log x))` divides in its gradient and loses
/// everything once a factor is zero. This is a Hillis-Steele scan instead: shift `x` right by one
/// (a 1 in front), then `ceil(log2 N)` times multiply by a copy of itself shifted by 1, 2, 4, ...
/// places (padded with ones). Only products, so values and gradients stay exact with zeros, and
/// about `3 log2 N` graph nodes rather than `N`.
pub fn exclusive_cumprod(x: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let Some(&n) = dims.last() else {
        return Err(crate::DncError::Shape {
            argument: "x",
            got: dims,
            expected: "a tensor of rank >= 1".into(),
        });
    };
    let last = dims.len() - 1;
    let ones = |k: usize| {
        let mut shape = dims.clone();
        shape[last] = k;
        Tensor::ones(shape, x.dtype(), x.device())
    };
    if n == 0 {
        return Ok(x.clone());
    }
    let mut scan = if n == 1 {
        ones(1)?
    } else {
        Tensor::cat(&[ones(1)?, x.narrow(last, 0, n - 1)?], last)?
    };
    let mut offset = 1;
    while offset < n {
        let shifted = Tensor::cat(&[ones(offset)?, scan.narrow(last, 0, n - offset)?], last)?;
        scan = (scan * shifted)?;
        offset *= 2;
    }
    Ok(scan)
}

/// The allocation weighting of one write head (Nature 2016, eq. 1 of the Methods):
/// with `phi` the row indices sorted by ascending usage,
/// `a[phi_j] = (1 - u[phi_j]) prod_{i < j} u[phi_i]`.
///
/// `usage` is `[B, N]` (first mapped through [`ALLOCATION_EPS`]); returns `[B, N]`. The sum of
/// the weighting is `1 - prod_i u_i`: one when some row is free, less as memory fills.
///
/// **Stop-gradient:** the sort order is an integer permutation and carries no gradient; the
/// gradient flows through the sorted usage values (a gather) to the usage vector.
pub fn allocation(usage: &Tensor) -> Result<Tensor> {
    dims2("usage", usage)?;
    let u = usage
        .affine(1.0 - ALLOCATION_EPS, ALLOCATION_EPS)?
        .contiguous()?;
    let order = u.detach().arg_sort_last_dim(true)?; // phi, [B, N] u32
    let sorted = u.gather(&order, 1)?;
    let sorted_allocation = (sorted.affine(-1.0, 1.0)? * exclusive_cumprod(&sorted)?)?;
    // The inverse permutation puts each sorted entry back at its row.
    let inverse = order.arg_sort_last_dim(true)?;
    Ok(sorted_allocation.gather(&inverse, 1)?)
}

/// The allocation weightings of several write heads, which allocate one after another: each
/// head allocates from the usage left after the heads before it, as if they had written with
/// their gate, `u <- u + (1 - u) g_h a_h`. `gates` `[B, Wh]` is each head's allocation gate times
/// its write gate; a head with gate 0 leaves the usage to the next head unchanged.
///
/// `usage` is `[B, N]`; returns `[B, Wh, N]`.
pub fn write_allocations(usage: &Tensor, gates: &Tensor) -> Result<Tensor> {
    let (b, _) = dims2("usage", usage)?;
    let (_, heads) = dims2("gates", gates)?;
    expect("gates", gates, &[b, heads])?;
    let mut u = usage.clone();
    let mut out = Vec::with_capacity(heads);
    for h in 0..heads {
        let a = allocation(&u)?;
        if h + 1 < heads {
            let taken = a.broadcast_mul(&gates.narrow(1, h, 1)?)?;
            u = (&u + (u.affine(-1.0, 1.0)? * taken)?)?;
        }
        out.push(a);
    }
    Ok(Tensor::stack(&out, 1)?)
}

/// The write weighting `w = g_w (g_a a + (1 - g_a) c)` of each write head: the allocation
/// weighting `a` and the content weighting `c` (`[B, Wh, N]`) mixed by the allocation gate
/// `g_a` and scaled by the write gate `g_w` (`[B, Wh]`).
pub fn write_weighting(
    allocation: &Tensor,
    content: &Tensor,
    allocation_gate: &Tensor,
    write_gate: &Tensor,
) -> Result<Tensor> {
    let (b, heads, n) = dims3("allocation", allocation)?;
    expect("content", content, &[b, heads, n])?;
    expect("allocation_gate", allocation_gate, &[b, heads])?;
    expect("write_gate", write_gate, &[b, heads])?;
    // c + g_a (a - c)
    let mixed =
        (content + (allocation - content)?.broadcast_mul(&allocation_gate.unsqueeze(2)?)?)?;
    Ok(mixed.broadcast_mul(&write_gate.unsqueeze(2)?)?)
}
