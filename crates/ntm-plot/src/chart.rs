//! SVG line charts for learning curves.

use std::fmt::Write as _;
use std::path::Path;

use crate::PlotError;

/// Chart width in SVG user units (pixels).
pub const CHART_WIDTH: u32 = 720;
/// Chart height in SVG user units (pixels).
pub const CHART_HEIGHT: u32 = 420;

const LEFT: f64 = 72.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 56.0;
const TICK_LEN: f64 = 5.0;
/// Rough advance of one 12px sans-serif character, for legend sizing.
const CHAR_W: f64 = 7.0;

/// Series colours, cycled when there are more series than colours.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// One curve of a [`LineChart`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// `(x, y)` points, joined in the order given. Non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// Optional spread, e.g. over seeds: `(x, lo, hi)` triples in x order,
    /// drawn as a translucent area behind the line.
    pub band: Option<Vec<(f64, f64, f64)>>,
}

impl Series {
    /// A series without a band.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
            band: None,
        }
    }

    /// The same series with a `(x, lo, hi)` band.
    pub fn with_band(mut self, band: Vec<(f64, f64, f64)>) -> Self {
        self.band = Some(band);
        self
    }
}

/// A line chart of one or more series, rendered as a standalone
/// [`CHART_WIDTH`] x [`CHART_HEIGHT`] SVG document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// The curves, each with its own colour and legend entry.
    pub series: Vec<Series>,
    /// Use a log10 y axis; points with `y <= 0` are then left out.
    pub log_y: bool,
}

/// A series reduced to what can be drawn, with y already on the axis scale.
struct Prepared {
    points: Vec<(f64, f64)>,
    /// `(x, lo, hi)`; `lo` is `None` when it cannot be shown on a log axis.
    band: Vec<(f64, Option<f64>, f64)>,
}

fn prepare(series: &Series, log_y: bool) -> Prepared {
    let scale_y = |y: f64| -> Option<f64> {
        if !y.is_finite() {
            None
        } else if log_y {
            (y > 0.0).then(|| y.log10())
        } else {
            Some(y)
        }
    };
    let points = series
        .points
        .iter()
        .filter(|(x, _)| x.is_finite())
        .filter_map(|&(x, y)| Some((x, scale_y(y)?)))
        .collect();
    let band = series
        .band
        .iter()
        .flatten()
        .filter(|(x, lo, hi)| x.is_finite() && lo.is_finite() && hi.is_finite())
        .filter_map(|&(x, lo, hi)| {
            let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            Some((x, scale_y(lo), scale_y(hi)?))
        })
        .collect();
    Prepared { points, band }
}

/// An axis: its data range (on the drawn scale) and labelled ticks.
#[derive(Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<(f64, String)>,
    /// Unlabelled grid positions (log axes only).
    minor: Vec<f64>,
}

impl Axis {
    /// Position of `v` within the axis, 0 at `lo` and 1 at `hi`.
    /// Halving first keeps the arithmetic finite for huge ranges.
    fn frac(&self, v: f64) -> f64 {
        let span = self.hi * 0.5 - self.lo * 0.5;
        if span > 0.0 && span.is_finite() {
            (v * 0.5 - self.lo * 0.5) / span
        } else {
            0.5
        }
    }

    /// A linear axis covering `min..=max` with round tick values.
    fn linear(min: f64, max: f64) -> Self {
        let (mut lo, mut hi) = (min, max);
        if lo == hi {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            lo -= pad;
            hi += pad;
        }
        let fallback = || Axis {
            lo: min,
            hi: max,
            ticks: if min == max {
                vec![(min, fmt_plain(min))]
            } else {
                vec![(min, fmt_plain(min)), (max, fmt_plain(max))]
            },
            minor: Vec::new(),
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

    /// A log10 axis; `min` and `max` are already log10 values.
    fn log10(min: f64, max: f64) -> Self {
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
fn fmt_plain(v: f64) -> String {
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

/// Escapes text for XML content and attribute values, dropping characters
/// XML 1.0 does not allow.
pub(crate) fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

impl LineChart {
    /// An empty chart with the given title and axis labels and a linear y axis.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            log_y: false,
        }
    }

    /// Renders the chart as a standalone SVG document.
    ///
    /// Non-finite points (and, with `log_y`, points with `y <= 0`) are
    /// skipped. Fails with [`PlotError::Empty`] when there are no series or
    /// no drawable point in any of them.
    pub fn to_svg(&self) -> Result<String, PlotError> {
        if self.series.is_empty() {
            return Err(PlotError::Empty {
                what: "line chart has no series".into(),
            });
        }
        let prepared: Vec<Prepared> = self.series.iter().map(|s| prepare(s, self.log_y)).collect();

        let mut xr = (f64::INFINITY, f64::NEG_INFINITY);
        let mut yr = (f64::INFINITY, f64::NEG_INFINITY);
        let grow = |r: &mut (f64, f64), v: f64| {
            r.0 = r.0.min(v);
            r.1 = r.1.max(v);
        };
        for p in &prepared {
            for &(x, y) in &p.points {
                grow(&mut xr, x);
                grow(&mut yr, y);
            }
            for &(x, lo, hi) in &p.band {
                grow(&mut xr, x);
                grow(&mut yr, hi);
                if let Some(lo) = lo {
                    grow(&mut yr, lo);
                }
            }
        }
        if xr.0 > xr.1 || yr.0 > yr.1 {
            let what = if self.log_y {
                "line chart has no finite point with y > 0 (log y axis)"
            } else {
                "line chart has no finite point"
            };
            return Err(PlotError::Empty { what: what.into() });
        }

        let x_axis = Axis::linear(xr.0, xr.1);
        let y_axis = if self.log_y {
            Axis::log10(yr.0, yr.1)
        } else {
            Axis::linear(yr.0, yr.1)
        };

        let (w, h) = (CHART_WIDTH as f64, CHART_HEIGHT as f64);
        let (x0, x1, y0, y1) = (LEFT, w - RIGHT, TOP, h - BOTTOM);
        let px = |x: f64| x0 + x_axis.frac(x) * (x1 - x0);
        let py = |y: f64| y1 - y_axis.frac(y) * (y1 - y0);

        let mut s = String::new();
        let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r##"<rect width="{w}" height="{h}" fill="#ffffff"/>"##);
        if !self.title.is_empty() {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
                w / 2.0,
                escape_xml(&self.title)
            );
        }

        // Grid.
        let _ = writeln!(s, r##"<g stroke="#f0f0f0" stroke-width="1">"##);
        for &m in &y_axis.minor {
            let y = py(m);
            let _ = writeln!(
                s,
                r#"<line x1="{x0:.2}" y1="{y:.2}" x2="{x1:.2}" y2="{y:.2}"/>"#
            );
        }
        let _ = writeln!(s, "</g>");
        let _ = writeln!(s, r##"<g stroke="#dddddd" stroke-width="1">"##);
        for (v, _) in &x_axis.ticks {
            let x = px(*v);
            let _ = writeln!(
                s,
                r#"<line x1="{x:.2}" y1="{y0:.2}" x2="{x:.2}" y2="{y1:.2}"/>"#
            );
        }
        for (v, _) in &y_axis.ticks {
            let y = py(*v);
            let _ = writeln!(
                s,
                r#"<line x1="{x0:.2}" y1="{y:.2}" x2="{x1:.2}" y2="{y:.2}"/>"#
            );
        }
        let _ = writeln!(s, "</g>");

        // Bands first, so every line stays visible on top of them.
        for (i, p) in prepared.iter().enumerate() {
            if p.band.is_empty() {
                continue;
            }
            let colour = PALETTE[i % PALETTE.len()];
            let mut pts = String::new();
            for &(x, _, hi) in &p.band {
                let _ = write!(pts, "{:.2},{:.2} ", px(x), py(hi));
            }
            for &(x, lo, _) in p.band.iter().rev() {
                let y = lo.map_or(y1, py);
                let _ = write!(pts, "{:.2},{:.2} ", px(x), y);
            }
            let _ = writeln!(
                s,
                r#"<polygon points="{}" fill="{colour}" fill-opacity="0.2" stroke="none"/>"#,
                pts.trim_end()
            );
        }
        for (i, p) in prepared.iter().enumerate() {
            if p.points.is_empty() {
                continue;
            }
            let colour = PALETTE[i % PALETTE.len()];
            let mut d = String::new();
            for (j, &(x, y)) in p.points.iter().enumerate() {
                let cmd = if j == 0 { 'M' } else { 'L' };
                let _ = write!(d, "{cmd}{:.2} {:.2} ", px(x), py(y));
            }
            let _ = writeln!(
                s,
                r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>"#,
                d.trim_end()
            );
            if let [(x, y)] = p.points[..] {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.2}" cy="{:.2}" r="3" fill="{colour}"/>"#,
                    px(x),
                    py(y)
                );
            }
        }

        // Axes, ticks and labels.
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.2}" y="{y0:.2}" width="{:.2}" height="{:.2}" fill="none" stroke="#333333" stroke-width="1"/>"##,
            x1 - x0,
            y1 - y0
        );
        let _ = writeln!(s, r##"<g stroke="#333333" stroke-width="1">"##);
        for (v, _) in &x_axis.ticks {
            let x = px(*v);
            let _ = writeln!(
                s,
                r#"<line x1="{x:.2}" y1="{y1:.2}" x2="{x:.2}" y2="{:.2}"/>"#,
                y1 + TICK_LEN
            );
        }
        for (v, _) in &y_axis.ticks {
            let y = py(*v);
            let _ = writeln!(
                s,
                r#"<line x1="{:.2}" y1="{y:.2}" x2="{x0:.2}" y2="{y:.2}"/>"#,
                x0 - TICK_LEN
            );
        }
        let _ = writeln!(s, "</g>");
        let _ = writeln!(s, r##"<g fill="#333333">"##);
        for (v, label) in &x_axis.ticks {
            let _ = writeln!(
                s,
                r#"<text x="{:.2}" y="{:.2}" text-anchor="middle">{}</text>"#,
                px(*v),
                y1 + TICK_LEN + 13.0,
                escape_xml(label)
            );
        }
        for (v, label) in &y_axis.ticks {
            let _ = writeln!(
                s,
                r#"<text x="{:.2}" y="{:.2}" text-anchor="end">{}</text>"#,
                x0 - TICK_LEN - 3.0,
                py(*v) + 4.0,
                escape_xml(label)
            );
        }
        let _ = writeln!(s, "</g>");
        if !self.x_label.is_empty() {
            let _ = writeln!(
                s,
                r#"<text x="{:.2}" y="{:.2}" text-anchor="middle" font-size="13">{}</text>"#,
                (x0 + x1) / 2.0,
                h - 14.0,
                escape_xml(&self.x_label)
            );
        }
        if !self.y_label.is_empty() {
            let _ = writeln!(
                s,
                r#"<text transform="translate(18 {:.2}) rotate(-90)" text-anchor="middle" font-size="13">{}</text>"#,
                (y0 + y1) / 2.0,
                escape_xml(&self.y_label)
            );
        }

        self.write_legend(&mut s, x1, y0);
        let _ = writeln!(s, "</svg>");
        Ok(s)
    }

    /// A legend box in the top-right corner of the plot area.
    fn write_legend(&self, s: &mut String, right: f64, top: f64) {
        let longest = self
            .series
            .iter()
            .map(|se| se.label.chars().count())
            .max()
            .unwrap_or(0) as f64;
        let row_h = 18.0;
        let box_w = 10.0 + 22.0 + 6.0 + longest * CHAR_W + 10.0;
        let box_h = 8.0 + row_h * self.series.len() as f64;
        let bx = right - 8.0 - box_w;
        let by = top + 8.0;
        let _ = writeln!(s, r#"<g class="legend">"#);
        let _ = writeln!(
            s,
            r##"<rect x="{bx:.2}" y="{by:.2}" width="{box_w:.2}" height="{box_h:.2}" fill="#ffffff" fill-opacity="0.85" stroke="#bbbbbb"/>"##
        );
        for (i, se) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let cy = by + 4.0 + row_h * (i as f64 + 0.5);
            let lx = bx + 10.0;
            if se.band.is_some() {
                let _ = writeln!(
                    s,
                    r#"<rect x="{lx:.2}" y="{:.2}" width="22" height="10" fill="{colour}" fill-opacity="0.2"/>"#,
                    cy - 5.0
                );
            }
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.2}" y1="{cy:.2}" x2="{:.2}" y2="{cy:.2}" stroke="{colour}" stroke-width="2"/>"#,
                lx + 22.0
            );
            let _ = writeln!(
                s,
                r##"<text x="{:.2}" y="{:.2}" fill="#333333">{}</text>"##,
                lx + 28.0,
                cy + 4.0,
                escape_xml(&se.label)
            );
        }
        let _ = writeln!(s, "</g>");
    }

    /// Renders the chart and writes it to `path` as an SVG file.
    pub fn save_svg(&self, path: &Path) -> Result<(), PlotError> {
        let svg = self.to_svg()?;
        std::fs::write(path, svg)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn escaping_drops_invalid_control_characters() {
        assert_eq!(escape_xml("a\u{0}b\u{7}c\td"), "abc d");
        assert_eq!(escape_xml("'&'"), "&apos;&amp;&apos;");
    }
}
