//! The element types the kernels run on and the vectorisable reductions they share.
#![allow(clippy::needless_range_loop)] // lane loops index several arrays at once

use candle_core::WithDType;
use num_traits::Float;

/// The element types the fused kernels run on, with exponential and logarithm implementations
/// the compiler can vectorise.
///
/// For `f32` they are branch-free polynomial approximations with a relative error of a few
/// units in the last place; for `f64` they are the standard library's (the `f64` path is the
/// one gradient checks use).
pub(crate) trait Real: Float + WithDType {
    /// `e^x`.
    fn exp_fast(self) -> Self;
    /// `ln x` for positive, normal `x`.
    fn ln_fast(self) -> Self;
}

impl Real for f64 {
    #[inline(always)]
    fn exp_fast(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn ln_fast(self) -> Self {
        self.ln()
    }
}

impl Real for f32 {
    // Range reduction `x = k ln 2 + r`, `|r| <= ln 2 / 2`, a degree-7 Taylor polynomial for
    // `e^r`, and `2^k` assembled in the exponent bits.
    #[inline(always)]
    fn exp_fast(self) -> Self {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting it rounds to an integer
        let x = self.clamp(-87.0, 88.0);
        let k = (x * LOG2E + ROUND) - ROUND;
        let r = x - k * LN2_HI - k * LN2_LO;
        let p = 1.0
            + r * (1.0
                + r * (0.5
                    + r * (1.0 / 6.0
                        + r * (1.0 / 24.0
                            + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
        p * f32::from_bits(((k as i32 + 127) as u32) << 23)
    }

    // `x = m 2^e` with `m` in `[sqrt(1/2), sqrt(2))`, then `ln m = 2 atanh(s)`,
    // `s = (m - 1) / (m + 1)`, as an odd series to `s^11`.
    #[inline(always)]
    fn ln_fast(self) -> Self {
        let bits = self.to_bits();
        let mut e = ((bits >> 23) & 0xff) as i32 - 127;
        let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
        let big = m > std::f32::consts::SQRT_2;
        m = if big { m * 0.5 } else { m };
        e += i32::from(big);
        let s = (m - 1.0) / (m + 1.0);
        let s2 = s * s;
        let series = s
            * (2.0
                + s2 * (2.0 / 3.0
                    + s2 * (2.0 / 5.0 + s2 * (2.0 / 7.0 + s2 * (2.0 / 9.0 + s2 * (2.0 / 11.0))))));
        series + e as f32 * std::f32::consts::LN_2
    }
}

/// `n` zeros, allocated without the allocator's zeroing path: under a steady stream of
/// allocations that path can clear whole fresh pages, which dominated the fused ops' time.
#[inline]
pub(crate) fn zeros<T: Float>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, T::zero());
    v
}

/// Independent partial sums in [`dot`] and [`dot3`]: enough to hide the latency of the
/// multiply-adds over a memory column (128 long in the paper), in two or four SIMD registers.
const LANES: usize = 16;

/// `sum_i a_i b_i` with [`LANES`] independent partial sums, so that the compiler can use SIMD
/// and the additions do not wait on each other (a single running sum is a dependency chain it
/// may not reorder).
#[inline(always)]
pub(crate) fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] = acc[k] + x[k] * y[k];
        }
    }
    let tail = ra.iter().zip(rb).fold(T::zero(), |s, (&x, &y)| s + x * y);
    sum_lanes(acc) + tail
}

/// `sum_i a_i b_i c_i`, vectorised as [`dot`] is.
#[inline(always)]
pub(crate) fn dot3<T: Float>(a: &[T], b: &[T], c: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let (ca, cb, cc) = (
        a.chunks_exact(LANES),
        b.chunks_exact(LANES),
        c.chunks_exact(LANES),
    );
    let (ra, rb, rc) = (ca.remainder(), cb.remainder(), cc.remainder());
    for ((x, y), z) in ca.zip(cb).zip(cc) {
        for k in 0..LANES {
            acc[k] = acc[k] + x[k] * y[k] * z[k];
        }
    }
    let tail = (ra.iter().zip(rb).zip(rc)).fold(T::zero(), |s, ((&x, &y), &z)| s + x * y * z);
    sum_lanes(acc) + tail
}

/// The lanes summed pairwise, half against half.
///
/// Never inlined: inlined, LLVM's SLP vectoriser sees this tree together with the lane loop of
/// [`dot`] and [`dot3`] and builds both from two-wide vectors, where alone the lane loop becomes
/// whole registers (eight-wide with AVX2): 2.5 times faster over 128 numbers, with the same
/// operations in the same order.
#[inline(never)]
fn sum_lanes<T: Float>(mut acc: [T; LANES]) -> T {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for k in 0..width {
            acc[k] = acc[k] + acc[k + width];
        }
    }
    acc[0]
}

/// `sum_i a_i` with four partial sums, vectorised as [`dot`] is.
#[inline(always)]
pub(crate) fn sum<T: Float>(a: &[T]) -> T {
    let mut acc = [T::zero(); 4];
    let chunks = a.chunks_exact(4);
    let tail = chunks.remainder().iter().fold(T::zero(), |s, &x| s + x);
    for x in chunks {
        for k in 0..4 {
            acc[k] = acc[k] + x[k];
        }
    }
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail
}

/// The largest of `scale * a_i` (negative infinity for an empty slice), in four lanes.
#[inline(always)]
pub(crate) fn max_scaled<T: Float>(a: &[T], scale: T) -> T {
    let mut acc = [T::neg_infinity(); 4];
    let chunks = a.chunks_exact(4);
    let tail = chunks.remainder().iter().fold(T::neg_infinity(), |m, &x| {
        let v = scale * x;
        if v > m {
            v
        } else {
            m
        }
    });
    for x in chunks {
        for k in 0..4 {
            let v = scale * x[k];
            acc[k] = if v > acc[k] { v } else { acc[k] };
        }
    }
    [acc[1], acc[2], acc[3], tail]
        .into_iter()
        .fold(acc[0], |m, v| if v > m { v } else { m })
}

/// `x` as a `T`.
#[inline(always)]
pub(crate) fn c<T: Real>(x: f64) -> T {
    T::from_f64(x)
}

/// `[rows, cols]` row-major to `[cols, rows]` row-major, for each of the `src.len() / (rows *
/// cols)` matrices in `src`.
pub(crate) fn transpose<T: Copy>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
    let size = (rows * cols).max(1);
    let mut out = Vec::with_capacity(src.len());
    for block in src.chunks_exact(size) {
        for j in 0..cols {
            out.extend((0..rows).map(|i| block[i * cols + j]));
        }
    }
    out
}

/// The logistic sigmoid `1 / (1 + e^-x)`: branch-free, so that loops of it vectorise, and
/// finite everywhere (`exp_fast` clamps its argument in `f32`; in `f64` `e^-x` may overflow to
/// infinity, which gives the correct limit 0).
#[inline(always)]
pub(crate) fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp_fast())
}

/// The logistic sigmoid with the standard exponential, in the two-branch form that never
/// overflows: exact to rounding. The memory step's activations use it (a few dozen per head and
/// step, where speed does not matter); the LSTM cell, which computes hundreds per step in a loop
/// that must vectorise, uses [`sigmoid`]. Changing either form changes the last bits of every
/// training run, and with them which seeds of a task generalise.
#[inline(always)]
pub(crate) fn sigmoid_exact<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

#[cfg(test)]
mod tests {
    use super::{dot, dot3, sigmoid, sigmoid_exact, sum, transpose, Real};

    #[test]
    fn fast_f32_exp_and_ln_are_accurate() {
        let mut worst = (0f64, 0f64);
        for i in 0..200_000 {
            let x = -80.0 + 160.0 * i as f32 / 200_000.0;
            let rel = ((x.exp_fast() as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            worst.0 = worst.0.max(rel);
            let y = 1e-30f32 * 1.0005f32.powi(i);
            if y.is_finite() && y > 0.0 {
                let abs = (y.ln_fast() as f64 - (y as f64).ln()).abs();
                worst.1 = worst.1.max(abs / (y as f64).ln().abs().max(1.0));
            }
        }
        assert!(worst.0 < 5e-7, "exp relative error {}", worst.0);
        assert!(worst.1 < 5e-7, "ln relative error {}", worst.1);
    }

    #[test]
    fn sigmoid_is_finite_and_exact_at_the_extremes() {
        for x in [-1e4f64, -800.0, -30.0, 0.0, 30.0, 800.0, 1e4] {
            // The two-branch form that never overflows.
            let want = if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                x.exp() / (1.0 + x.exp())
            };
            assert!((sigmoid(x) - want).abs() <= 1e-15 * want, "{x}");
        }
        for x in [-1e4f32, -100.0, -3.0, 0.0, 3.0, 100.0, 1e4] {
            let s = sigmoid(x);
            assert!(s.is_finite() && (0.0..=1.0).contains(&s), "{x}: {s}");
        }
        assert_eq!(sigmoid(0f32), 0.5);
    }

    #[test]
    fn both_sigmoids_agree_and_the_exact_one_matches_f64() {
        for i in 0..=4000 {
            let x = -40.0 + i as f32 * 0.02;
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            let (fast, exact) = (sigmoid(x) as f64, sigmoid_exact(x) as f64);
            assert!(
                (exact - want).abs() <= 2.0 * f32::EPSILON as f64 * want,
                "{x}"
            );
            assert!((fast - want).abs() <= 1e-6 * want, "{x}");
        }
        assert_eq!(sigmoid_exact(-1e4f32), 0.0);
        assert_eq!(sigmoid_exact(1e4f32), 1.0);
        assert!(sigmoid_exact(f32::NAN).is_nan());
    }

    #[test]
    fn lane_sums_match_plain_sums_for_every_length() {
        for len in 0..70 {
            let a: Vec<f64> = (0..len).map(|i| (i as f64 * 0.7).sin()).collect();
            let b: Vec<f64> = (0..len).map(|i| (i as f64 * 1.3).cos()).collect();
            let c: Vec<f64> = (0..len).map(|i| 1.0 + i as f64 * 0.01).collect();
            let plain_dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let plain_dot3: f64 = (0..len).map(|i| a[i] * b[i] * c[i]).sum();
            assert!((dot(&a, &b) - plain_dot).abs() < 1e-12, "dot, length {len}");
            assert!(
                (dot3(&a, &b, &c) - plain_dot3).abs() < 1e-12,
                "dot3, length {len}"
            );
            assert!(
                (sum(&a) - a.iter().sum::<f64>()).abs() < 1e-12,
                "sum, length {len}"
            );
        }
    }

    #[test]
    fn transpose_swaps_each_matrix() {
        // Two 2 x 3 matrices.
        let x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        assert_eq!(
            transpose(&x, 2, 3),
            vec![1, 4, 2, 5, 3, 6, 7, 10, 8, 11, 9, 12]
        );
        assert_eq!(transpose(&transpose(&x, 2, 3), 3, 2), x.to_vec());
    }
}
