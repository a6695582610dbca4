//! SVG line charts for learning curves, drawn with plotters.

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::draw_err;
use crate::{font, PlotError};

/// Chart width in SVG user units (pixels).
pub const CHART_WIDTH: u32 = 720;
/// Chart height in SVG user units (pixels).
pub const CHART_HEIGHT: u32 = 420;

/// Series colours (matplotlib's "tab10"), cycled when there are more series
/// than colours.
const PALETTE: [u32; 10] = [
    0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22,
    0x17becf,
];
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
const MINOR_GRID: RGBColor = RGBColor(0xf0, 0xf0, 0xf0);
/// Opacity of a spread band.
const BAND_ALPHA: f64 = 0.2;
/// Length of a legend's line sample, in pixels.
const SAMPLE_W: i32 = 22;

fn series_colour(i: usize) -> RGBColor {
    let [_, r, g, b] = PALETTE[i % PALETTE.len()].to_be_bytes();
    RGBColor(r, g, b)
}

/// A compact tick label of at most six significant digits: `0.25`, `800`,
/// `1.2k`, `200k`, `1.25M`, and `3e-5` for very small or large values.
pub(crate) fn compact(v: &f64) -> String {
    // Rounding through decimal text drops float noise (0.6000000000000001).
    let v: f64 = format!("{v:.5e}").parse().unwrap_or(*v);
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e15).contains(&a) {
        return format!("{v:e}");
    }
    let (div, suffix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|&(div, _)| a >= div)
        .unwrap_or((1.0, ""));
    format!("{}{suffix}", v / div)
}

/// A linear axis range over `lo..=hi` that plotters can tick and map: with
/// a finite span (its tick search never ends on an infinite one) and not
/// empty (it maps all of an empty range to one pixel).
fn linear(lo: f64, hi: f64) -> Range<f64> {
    let clamp = |v: f64| v.clamp(f64::MIN / 4.0, f64::MAX / 4.0);
    let (lo, hi) = (clamp(lo), clamp(hi));
    let pad = if lo < hi {
        0.0
    } else {
        lo.abs().max(1.0) / 10.0
    };
    lo - pad..hi + pad
}

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
/// [`CHART_WIDTH`] x [`CHART_HEIGHT`] SVG document with a title, axes with
/// tick labels and titles, a light grid and a legend in the top-right corner.
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

/// A series reduced to what can be drawn.
struct Prepared {
    points: Vec<(f64, f64)>,
    /// `(x, lo, hi)`; `lo` is `None` when it cannot be shown on a log axis.
    band: Vec<(f64, Option<f64>, f64)>,
}

fn prepare(series: &Series, log_y: bool) -> Prepared {
    let shown = |y: f64| y.is_finite() && (!log_y || y > 0.0);
    let points = series
        .points
        .iter()
        .copied()
        .filter(|&(x, y)| x.is_finite() && shown(y))
        .collect();
    let band = series
        .band
        .iter()
        .flatten()
        .filter(|(x, lo, hi)| x.is_finite() && lo.is_finite() && hi.is_finite())
        .filter_map(|&(x, lo, hi)| {
            let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            shown(hi).then_some((x, shown(lo).then_some(lo), hi))
        })
        .collect();
    Prepared { points, band }
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
    /// Text is set in DejaVu Sans (named `DejaVu Sans, sans-serif`), which
    /// the layout is measured with. Non-finite points (and, with `log_y`,
    /// points with `y <= 0`) are skipped. Fails with [`PlotError::Empty`]
    /// when there are no series or no drawable point in any of them.
    pub fn to_svg(&self) -> Result<String, PlotError> {
        if self.series.is_empty() {
            return Err(PlotError::Empty {
                what: "line chart has no series".into(),
            });
        }
        let prepared: Vec<Prepared> = self.series.iter().map(|s| prepare(s, self.log_y)).collect();
        let (mut x, mut y) = (
            [f64::INFINITY, f64::NEG_INFINITY],
            [f64::INFINITY, f64::NEG_INFINITY],
        );
        let grow = |r: &mut [f64; 2], v: f64| *r = [r[0].min(v), r[1].max(v)];
        for p in &prepared {
            for &(px, py) in &p.points {
                grow(&mut x, px);
                grow(&mut y, py);
            }
            for &(bx, lo, hi) in &p.band {
                grow(&mut x, bx);
                grow(&mut y, hi);
                lo.into_iter().for_each(|lo| grow(&mut y, lo));
            }
        }
        if x[0] > x[1] {
            let what = if self.log_y {
                "line chart has no finite point with y > 0 (log y axis)"
            } else {
                "line chart has no finite point"
            };
            return Err(PlotError::Empty { what: what.into() });
        }
        font::ensure_registered()?;

        let mut svg = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        {
            let root =
                SVGBackend::with_string(&mut svg, (CHART_WIDTH, CHART_HEIGHT)).into_drawing_area();
            let x = linear(x[0], x[1]);
            if self.log_y {
                // Whole decades, so that there are powers of ten to label, and
                // a hair more, so that plotters' rounding keeps the end ones;
                // at most 300 of them, as plotters' log ticks never end when
                // the ratio of the ends overflows.
                let hi = y[1].log10().ceil();
                let lo = y[0].log10().floor().clamp(hi - 300.0, hi - 1.0);
                let y = 10f64.powf(lo - 1e-9)..10f64.powf(hi + 1e-9).min(f64::MAX);
                self.draw(&root, &prepared, x, y.log_scale())?;
            } else {
                self.draw(&root, &prepared, x, linear(y[0], y[1]))?;
            }
            root.present().map_err(draw_err)?;
        }
        Ok(svg)
    }

    fn draw<Y>(
        &self,
        root: &DrawingArea<SVGBackend, Shift>,
        prepared: &[Prepared],
        x: Range<f64>,
        y: Y,
    ) -> Result<(), PlotError>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        root.fill(&WHITE).map_err(draw_err)?;
        let mut builder = ChartBuilder::on(root);
        builder
            .margin_top(10)
            .margin_right(28)
            .margin_left(10)
            .margin_bottom(6)
            .x_label_area_size(46)
            .y_label_area_size(66);
        let title = font::clean(&self.title);
        if !title.is_empty() {
            builder.caption(title, font::bold(20.0).color(&INK));
        }
        let mut chart = builder.build_cartesian_2d(x, y).map_err(draw_err)?;

        let mut mesh = chart.configure_mesh();
        mesh.label_style(font::regular(14.0).color(&INK))
            .axis_desc_style(font::regular(16.0).color(&INK))
            .x_label_formatter(&compact)
            .y_label_formatter(&compact)
            .axis_style(INK)
            .bold_line_style(GRID)
            .light_line_style(MINOR_GRID)
            // A minor grid only between the decades of a log axis.
            .x_max_light_lines(0)
            .y_max_light_lines(if self.log_y { 10 } else { 0 })
            .set_all_tick_mark_size(5);
        let (x_label, y_label) = (font::clean(&self.x_label), font::clean(&self.y_label));
        if !x_label.is_empty() {
            mesh.x_desc(x_label);
        }
        if !y_label.is_empty() {
            mesh.y_desc(y_label);
        }
        mesh.draw().map_err(draw_err)?;

        // Bands first, so every line stays visible on top of them.
        let floor = chart.y_range().start;
        for (i, p) in prepared.iter().enumerate() {
            if p.band.is_empty() {
                continue;
            }
            let hi = p.band.iter().map(|&(x, _, hi)| (x, hi));
            let lo = p
                .band
                .iter()
                .rev()
                .map(|&(x, lo, _)| (x, lo.unwrap_or(floor)));
            let fill = series_colour(i).mix(BAND_ALPHA).filled();
            chart
                .draw_series([Polygon::new(hi.chain(lo).collect::<Vec<_>>(), fill)])
                .map_err(draw_err)?;
        }

        for ((i, p), series) in prepared.iter().enumerate().zip(&self.series) {
            let colour = series_colour(i);
            let line = colour.stroke_width(2);
            let anno = chart
                .draw_series(LineSeries::new(p.points.iter().copied(), line))
                .map_err(draw_err)?;
            anno.label(font::clean(&series.label));
            if p.band.is_empty() {
                anno.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + SAMPLE_W, y)], line));
            } else {
                let swatch = colour.mix(BAND_ALPHA).filled();
                anno.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + Rectangle::new([(0, -6), (SAMPLE_W, 6)], swatch)
                        + PathElement::new(vec![(0, 0), (SAMPLE_W, 0)], line)
                });
            }
            if let [point] = p.points[..] {
                chart
                    .draw_series([Circle::new(point, 3, colour.filled())])
                    .map_err(draw_err)?;
            }
        }

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .margin(8)
            .legend_area_size(SAMPLE_W + 8)
            .label_font(font::regular(14.0).color(&INK))
            .background_style(WHITE.mix(0.85))
            .border_style(GRID)
            .draw()
            .map_err(draw_err)?;
        Ok(())
    }

    /// Renders the chart and writes it to `path` as an SVG file.
    pub fn save_svg(&self, path: &Path) -> Result<(), PlotError> {
        let svg = self.to_svg()?;
        crate::error::write_file(path, svg)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_compact() {
        let labels = [
            0.0,
            -0.0,
            800.0,
            1000.0,
            1500.0,
            200_000.0,
            1_250_000.0,
            2e9,
            -2.5,
        ];
        let labels: Vec<String> = labels.iter().map(compact).collect();
        let expected = ["0", "0", "800", "1k", "1.5k", "200k", "1.25M", "2G", "-2.5"];
        assert_eq!(labels, expected);
        assert_eq!(compact(&0.6000000000000001), "0.6");
        assert_eq!(compact(&0.001), "0.001");
        assert_eq!(compact(&3e-5), "3e-5");
        assert_eq!(compact(&1.2e20), "1.2e20");
    }

    #[test]
    fn linear_ranges_are_never_empty_or_infinite() {
        assert_eq!(linear(3.0, 97.0), 3.0..97.0);
        assert_eq!(linear(5.0, 5.0), 4.5..5.5);
        assert_eq!(linear(0.0, 0.0), -0.1..0.1);
        let huge = linear(-f64::MAX, f64::MAX);
        assert!((huge.end - huge.start).is_finite());
    }
}
