//! A viridis-like colour ramp: dark purple → blue → teal → green → yellow.
//!
//! Lightness grows monotonically along the ramp, so it reads correctly in
//! greyscale and for the common forms of colour blindness.

/// Anchor colours, evenly spaced over `0..=1`.
const ANCHORS: [[f32; 3]; 6] = [
    [68.0, 1.0, 84.0],
    [65.0, 68.0, 135.0],
    [42.0, 120.0, 142.0],
    [34.0, 168.0, 132.0],
    [122.0, 209.0, 81.0],
    [253.0, 231.0, 37.0],
];

/// Colour for a normalised value `t` (clamped to `0..=1`; NaN maps to 0).
pub(crate) fn ramp(t: f32) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let segments = (ANCHORS.len() - 1) as f32;
    let pos = t * segments;
    let i = (pos.floor() as usize).min(ANCHORS.len() - 2);
    let f = pos - i as f32;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    let mix = |k: usize| (a[k] + (b[k] - a[k]) * f).round().clamp(0.0, 255.0) as u8;
    [mix(0), mix(1), mix(2)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luma(c: [u8; 3]) -> f32 {
        0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32
    }

    #[test]
    fn ends_hit_the_anchors() {
        assert_eq!(ramp(0.0), [68, 1, 84]);
        assert_eq!(ramp(1.0), [253, 231, 37]);
        assert_eq!(ramp(-3.0), ramp(0.0));
        assert_eq!(ramp(7.0), ramp(1.0));
        assert_eq!(ramp(f32::NAN), ramp(0.0));
    }

    #[test]
    fn lightness_increases_monotonically() {
        let mut prev = luma(ramp(0.0));
        for i in 1..=100 {
            let l = luma(ramp(i as f32 / 100.0));
            assert!(l >= prev - 0.5, "luma dropped at {i}: {prev} -> {l}");
            prev = l;
        }
    }
}
