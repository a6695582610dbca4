//! SVG line charts for learning curves, drawn with plotters.

use std::path::Path;

use plotters::prelude::*;

use crate::axis::Axis;
use crate::error::draw_err;
use crate::{font, PlotError};

/// Chart width in SVG user units (pixels).
pub const CHART_WIDTH: u32 = 720;
/// Chart height in SVG user units (pixels).
pub const CHART_HEIGHT: u32 = 420;

/// Series colours (matplotlib's "tab10"), cycled when there are more series
/// than colours.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
const MINOR_GRID: RGBColor = RGBColor(0xf0, 0xf0, 0xf0);
const LEGEND_BORDER: RGBColor = RGBColor(0xbb, 0xbb, 0xbb);
/// Opacity of a spread band.
const BAND_ALPHA: f64 = 0.2;
/// Length of a legend's line sample, in pixels.
const SAMPLE_W: i32 = 22;

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

    /// The axes covering every drawable point and band of `prepared`.
    fn axes(&self, prepared: &[Prepared]) -> Result<(Axis, Axis), PlotError> {
        let mut xr = (f64::INFINITY, f64::NEG_INFINITY);
        let mut yr = (f64::INFINITY, f64::NEG_INFINITY);
        let grow = |r: &mut (f64, f64), v: f64| {
            r.0 = r.0.min(v);
            r.1 = r.1.max(v);
        };
        for p in prepared {
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
        let y_axis = if self.log_y {
            Axis::log10(yr.0, yr.1)
        } else {
            Axis::linear(yr.0, yr.1)
        };
        Ok((Axis::linear(xr.0, xr.1), y_axis))
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
        let (x_axis, y_axis) = self.axes(&prepared)?;
        font::ensure_registered()?;

        let mut svg = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        {
            let root =
                SVGBackend::with_string(&mut svg, (CHART_WIDTH, CHART_HEIGHT)).into_drawing_area();
            self.draw(&root, &prepared, x_axis, y_axis)?;
            root.present().map_err(draw_err)?;
        }
        Ok(svg)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        prepared: &[Prepared],
        x_axis: Axis,
        y_axis: Axis,
    ) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(draw_err)?;
        let y_floor = y_axis.lo;
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
        let mut chart = builder
            .build_cartesian_2d(x_axis, y_axis)
            .map_err(draw_err)?;

        let mut mesh = chart.configure_mesh();
        mesh.label_style(font::regular(14.0).color(&INK))
            .axis_desc_style(font::regular(16.0).color(&INK))
            .axis_style(INK)
            .bold_line_style(GRID)
            .light_line_style(MINOR_GRID)
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
        for (i, p) in prepared.iter().enumerate() {
            if p.band.is_empty() {
                continue;
            }
            let colour = PALETTE[i % PALETTE.len()];
            let outline: Vec<(f64, f64)> = p
                .band
                .iter()
                .map(|&(x, _, hi)| (x, hi))
                .chain(
                    p.band
                        .iter()
                        .rev()
                        .map(|&(x, lo, _)| (x, lo.unwrap_or(y_floor))),
                )
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    colour.mix(BAND_ALPHA).filled(),
                )))
                .map_err(draw_err)?;
        }

        for ((i, p), series) in prepared.iter().enumerate().zip(&self.series) {
            let colour = PALETTE[i % PALETTE.len()];
            let line = colour.stroke_width(2);
            let anno = chart
                .draw_series(LineSeries::new(p.points.iter().copied(), line))
                .map_err(draw_err)?;
            anno.label(font::clean(&series.label));
            if series.band.is_some() {
                anno.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + Rectangle::new([(0, -6), (SAMPLE_W, 6)], colour.mix(BAND_ALPHA).filled())
                        + PathElement::new(vec![(0, 0), (SAMPLE_W, 0)], line)
                });
            } else {
                anno.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + SAMPLE_W, y)], line));
            }
            if let [point] = p.points[..] {
                chart
                    .draw_series(std::iter::once(Circle::new(point, 3, colour.filled())))
                    .map_err(draw_err)?;
            }
        }

        // Close the frame that the axes start along the top and right.
        let area = chart.plotting_area();
        let (xs, ys) = (area.get_x_range(), area.get_y_range());
        area.draw(&PathElement::new(
            vec![(xs.start, ys.end), (xs.end, ys.end), (xs.end, ys.start)],
            INK,
        ))
        .map_err(draw_err)?;

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .margin(8)
            .legend_area_size(SAMPLE_W + 8)
            .label_font(font::regular(14.0).color(&INK))
            .background_style(WHITE.mix(0.85))
            .border_style(LEGEND_BORDER)
            .draw()
            .map_err(draw_err)?;
        Ok(())
    }

    /// Renders the chart and writes it to `path` as an SVG file.
    pub fn save_svg(&self, path: &Path) -> Result<(), PlotError> {
        let svg = self.to_svg()?;
        std::fs::write(path, svg)?;
        Ok(())
    }
}
