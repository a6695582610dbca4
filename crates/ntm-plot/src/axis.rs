//! Coordinate axes for plotters: round-valued ticks with compact labels for
//! the charts ([`Axis`]) and cell-centred integer ticks for heatmaps
//! ([`Cells`]).
//!
//! Both implement plotters' [`Ranged`], so plotters draws their tick marks,
//! labels and grid lines. Each maps values to pixels itself, clamped to the
//! drawing limits, so that no data range (however large) makes a pixel
//! coordinate overflow.

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};

/// Maps `frac` (0 at the first limit, 1 at the second) to a pixel.
fn lerp_pixel(frac: f64, (a, b): (i32, i32)) -> i32 {
    let frac = if frac.is_finite() {
        frac.clamp(-1.0, 2.0)
    } else {
        0.5
    };
    let span = f64::from(b) - f64::from(a);
    (f64::from(a) + frac * span).round() as i32
}

/// A chart axis: its range on the drawn scale (log10 values for a log axis)
/// and its labelled ticks.
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    pub lo: f64,
    pub hi: f64,
    /// Labelled tick positions, drawn as bold grid lines.
    pub ticks: Vec<(f64, String)>,
    /// Unlabelled grid positions (log axes only).
    pub minor: Vec<f64>,
}

impl Axis {
    /// Position of `v` within the axis, 0 at `lo` and 1 at `hi`.
    /// Halving first keeps the arithmetic finite for huge ranges.
    pub fn frac(&self, v: f64) -> f64 {
        let span = self.hi * 0.5 - self.lo * 0.5;
        if span > 0.0 && span.is_finite() {
            (v * 0.5 - self.lo * 0.5) / span
        } else {
            0.5
        }
    }

    /// An axis spanning exactly `lo..=hi` with a tick at each end, e.g. for
    /// a colour key.
    pub fn ends(lo: f64, hi: f64) -> Self {
        Axis {
            lo,
            hi,
            ticks: vec![(lo, fmt_plain(lo)), (hi, fmt_plain(hi))],
            minor: Vec::new(),
        }
    }

    /// A linear axis covering `min..=max` with round tick values.
    pub fn linear(min: f64, max: f64) -> Self {
        let (mut lo, mut hi) = (min, max);
        if lo == hi {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            lo -= pad;
            hi += pad;
        }
        let fallback = || {
            if min == max {
                Axis {
                    lo: min,
                    hi: max,
                    ticks: vec![(min, fmt_plain(min))],
                    minor: Vec::new(),
                }
            } else {
                Axis::ends(min, max)
            }
        };
        let half_span = hi * 0.5 - lo * 0.5;
        if !lo.is_finite() || !hi.is_finite() || !half_span.is_finite() || half_span <= 0.0 {
            return fallback();
        }
        // Aim for about six ticks.
        let step = nice_step(half_span / 2.5);
        if !step.is_finite() || step <= 0.0 {
            return fallback();
        }
        let first = (lo / step).floor();
        let last = (hi / step).ceil();
        let count = last - first;
        if !(1.0..=50.0).contains(&count) {
            return fallback();
        }
        let (axis_lo, axis_hi) = (first * step, last * step);
        if !axis_lo.is_finite() || !axis_hi.is_finite() {
            return fallback();
        }
        let ticks = (0..=count as i64)
            .map(|i| {
                let mut v = (first + i as f64) * step;
                if v.abs() < step * 1e-9 {
                    v = 0.0;
                }
                (v, fmt_tick(v, step))
            })
            .collect();
        Axis {
            lo: axis_lo,
            hi: axis_hi,
            ticks,
            minor: Vec::new(),
        }
    }

    /// A log10 axis over whole decades; `min` and `max` are already log10
    /// values. Ticks are labelled with the powers of ten themselves.
    pub fn log10(min: f64, max: f64) -> Self {
        let lo = min.floor();
        let mut hi = max.ceil();
        if hi <= lo {
            hi = lo + 1.0;
        }
        let decades = hi - lo;
        let every = (decades / 8.0).ceil().max(1.0);
        let mut ticks = Vec::new();
        let mut k = lo;
        while k <= hi + 1e-9 {
            ticks.push((k, fmt_pow10(k as i32)));
            k += every;
        }
        let mut minor = Vec::new();
        if decades <= 4.0 {
            for d in 0..decades as i32 {
                for m in 2..10 {
                    minor.push(lo + d as f64 + (m as f64).log10());
                }
            }
        }
        Axis {
            lo,
            hi,
            ticks,
            minor,
        }
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        lerp_pixel(self.frac(*value), limit)
    }

    /// The labelled ticks for bold lines and labels; the minor grid when
    /// light lines are asked for.
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.ticks.iter().map(|&(v, _)| v).collect()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    /// Plotters only asks for labels at the axis's own ticks.
    fn format_ext(&self, value: &f64) -> String {
        self.ticks
            .iter()
            .find(|(v, _)| v == value)
            .map_or_else(|| fmt_plain(*value), |(_, label)| label.clone())
    }
}

/// A heatmap axis of `n` unit cells: value `v` in `0..=n` is the cell edge
/// `v` cells from the start, so cell `i` spans `i..i + 1`. Ticks sit at cell
/// centres and are labelled with the cell index. With `flip` the cells run
/// against the drawing direction, which puts row 0 at the top of a y axis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cells {
    pub n: usize,
    pub flip: bool,
}

impl Cells {
    /// Label spacing: the smallest of 1, 2, 5, 10, 20, 50, ... cells that
    /// leaves at most `max` labels.
    fn step(&self, max: usize) -> usize {
        let max = max.max(1);
        let mut base = 1usize;
        loop {
            for m in [1, 2, 5] {
                let step = base.saturating_mul(m);
                if self.n.div_ceil(step) <= max || step >= self.n {
                    return step.max(1);
                }
            }
            base = base.saturating_mul(10);
        }
    }
}

impl Ranged for Cells {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, (a, b): (i32, i32)) -> i32 {
        let n = self.n.max(1) as f64;
        // Plotters' limits are the first and last pixel: one more pixel than
        // their difference, so that each cell gets a whole number of pixels.
        let dir = if b >= a { 1.0 } else { -1.0 };
        let len = (f64::from(b) - f64::from(a)).abs() + 1.0;
        let offset = (value / n).clamp(-1.0, 2.0) * len;
        let offset = if offset.is_finite() { offset } else { 0.0 };
        let start = if self.flip { b } else { a };
        let dir = if self.flip { -dir } else { dir };
        (f64::from(start) + dir * offset).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() || self.n == 0 {
            return Vec::new();
        }
        let step = self.step(hint.bold_points());
        (0..self.n).step_by(step).map(|i| i as f64 + 0.5).collect()
    }

    fn range(&self) -> Range<f64> {
        0.0..self.n as f64
    }
}

impl ValueFormatter<f64> for Cells {
    fn format_ext(&self, value: &f64) -> String {
        format!("{}", value.floor().max(0.0) as usize)
    }
}

/// The round number (1, 2, 2.5 or 5 times a power of ten) at or above `raw`.
fn nice_step(raw: f64) -> f64 {
    let base = 10f64.powf(raw.log10().floor());
    let f = raw / base;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * base
}

/// Decimals needed to show multiples of `step` exactly.
fn decimals(step: f64) -> usize {
    let mut s = step.abs();
    for d in 0..=12 {
        if (s - s.round()).abs() <= 1e-6 * s.max(1.0) {
            return d;
        }
        s *= 10.0;
    }
    12
}

/// Drops trailing zeros after a decimal point, and the point itself.
fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Scientific notation with a short mantissa, e.g. `2.5e-5`.
fn fmt_sci(v: f64) -> String {
    let s = format!("{v:.3e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa.to_string())),
        None => s,
    }
}

/// A label for an arbitrary value.
pub(crate) fn fmt_plain(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e15).contains(&a) {
        fmt_sci(v)
    } else {
        fmt_tick(v, 10f64.powf(a.log10().floor() - 2.0))
    }
}

/// A compact label for tick value `v` on a grid of spacing `step`:
/// `0.25`, `800`, `1.2k`, `200k`, `1.5M`, `3e-5`.
fn fmt_tick(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-4..1e15).contains(&a) || step < 1e-4 {
        return fmt_sci(v);
    }
    let (div, suffix) = if a >= 1e12 {
        (1e12, "T")
    } else if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let d = decimals(step / div);
    format!("{}{suffix}", trim_zeros(format!("{:.*}", d, v / div)))
}

/// Label for `10^k`.
fn fmt_pow10(k: i32) -> String {
    if (-3..=14).contains(&k) {
        let v = 10f64.powi(k);
        fmt_tick(v, v)
    } else {
        format!("1e{k}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::coord::ranged1d::{BoldPoints, LightPoints};

    #[test]
    fn nice_steps_are_round() {
        assert_eq!(nice_step(200.0), 200.0);
        assert_eq!(nice_step(0.13), 0.2);
        assert_eq!(nice_step(2.2), 2.5);
        assert_eq!(nice_step(3.3), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
    }

    #[test]
    fn tick_labels_are_compact() {
        assert_eq!(fmt_tick(0.0, 1.0), "0");
        assert_eq!(fmt_tick(200_000.0, 50_000.0), "200k");
        assert_eq!(fmt_tick(1_200_000.0, 200_000.0), "1.2M");
        assert_eq!(fmt_tick(1000.0, 200.0), "1k");
        assert_eq!(fmt_tick(1500.0, 500.0), "1.5k");
        assert_eq!(fmt_tick(-2.5, 2.5), "-2.5");
        assert_eq!(fmt_tick(0.6000000000000001, 0.2), "0.6");
        assert_eq!(fmt_tick(3e-5, 1e-5), "3e-5");
        assert_eq!(fmt_tick(2e9, 1e9), "2G");
        assert_eq!(fmt_pow10(-2), "0.01");
        assert_eq!(fmt_pow10(3), "1k");
        assert_eq!(fmt_pow10(-7), "1e-7");
        assert_eq!(fmt_plain(0.5), "0.5");
        assert_eq!(fmt_plain(-1.0), "-1");
    }

    #[test]
    fn linear_axis_covers_data_with_round_ends() {
        let a = Axis::linear(3.0, 97.0);
        assert!(a.lo <= 3.0 && a.hi >= 97.0);
        assert_eq!(a.lo, 0.0);
        assert_eq!(a.hi, 100.0);
        assert!(a.ticks.len() >= 4 && a.ticks.len() <= 12, "{:?}", a.ticks);
        let flat = Axis::linear(5.0, 5.0);
        assert!(flat.lo < 5.0 && flat.hi > 5.0);
        assert!((flat.frac(5.0) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn log_axis_spans_whole_decades() {
        let a = Axis::log10(-2.3, 1.2);
        assert_eq!((a.lo, a.hi), (-3.0, 2.0));
        assert_eq!(a.ticks.len(), 6);
        assert!(a.minor.is_empty(), "no minor grid over five decades");
        assert_eq!(Axis::log10(-1.5, 0.7).minor.len(), 3 * 8);
        let wide = Axis::log10(-300.0, 300.0);
        assert!(wide.ticks.len() <= 10);
    }

    #[test]
    fn axis_maps_into_the_limits_even_for_huge_ranges() {
        let a = Axis::linear(0.0, 100.0);
        assert_eq!(a.map(&0.0, (10, 110)), 10);
        assert_eq!(a.map(&50.0, (10, 110)), 60);
        assert_eq!(a.map(&100.0, (300, 100)), 100);
        let huge = Axis::linear(-f64::MAX, f64::MAX);
        for v in [-f64::MAX, 0.0, f64::MAX] {
            let p = huge.map(&v, (0, 600));
            assert!((0..=600).contains(&p), "{v} -> {p}");
        }
        assert_eq!(a.format_ext(&20.0), "20");
    }

    #[test]
    fn cells_give_each_cell_whole_pixels_and_centred_labels() {
        // 10 cells over pixels 100..=159: 6 pixels each.
        let x = Cells { n: 10, flip: false };
        assert_eq!(x.map(&0.0, (100, 159)), 100);
        assert_eq!(x.map(&3.0, (100, 159)), 118);
        assert_eq!(x.map(&10.0, (100, 159)), 160);
        // A flipped y axis: plotters passes (bottom, top); row 0 is on top.
        let y = Cells { n: 4, flip: true };
        assert_eq!(y.map(&0.0, (47, 24)), 24);
        assert_eq!(y.map(&1.0, (47, 24)), 30);
        assert_eq!(y.map(&4.0, (47, 24)), 48);

        assert_eq!(
            x.key_points(BoldPoints(10)),
            vec![0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]
        );
        assert_eq!(x.key_points(BoldPoints(4)), vec![0.5, 5.5]);
        assert!(x.key_points(LightPoints::new(4, 40)).is_empty());
        let long = Cells {
            n: 120,
            flip: false,
        };
        let ticks = long.key_points(BoldPoints(8));
        assert_eq!(ticks.first(), Some(&0.5));
        assert_eq!(ticks.get(1), Some(&20.5));
        assert_eq!(long.format_ext(&20.5), "20");
        assert!(Cells { n: 0, flip: false }
            .key_points(BoldPoints(5))
            .is_empty());
    }
}
