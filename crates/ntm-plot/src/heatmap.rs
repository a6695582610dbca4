//! Stacked heatmap panels rendered to PNG with plotters' bitmap backend.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::axis::{fmt_plain, Cells};
use crate::error::draw_err;
use crate::raster::Raster;
use crate::{font, PlotError};

/// Largest width, in pixels, of a rendered figure.
pub const MAX_WIDTH: usize = 4000;
/// Largest height, in pixels, of a rendered figure.
pub const MAX_HEIGHT: usize = 8000;

/// Default pixels per heatmap cell.
pub const DEFAULT_CELL: usize = 6;

const MARGIN: usize = 10;
/// Height of the band above each heatmap holding its title and colour key.
const TITLE_H: usize = 24;
/// Width of the row-index labels left of each heatmap.
const Y_LABEL_W: usize = 40;
/// Height of the time-step labels under each heatmap.
const X_LABEL_H: usize = 22;
/// Extra height under the last panel for the x axis title.
const X_DESC_H: usize = 18;
const PANEL_GAP: usize = 8;
/// Room right of the widest heatmap for its last tick label.
const RIGHT_PAD: usize = 16;
/// Width of the colour key's gradient.
const KEY_W: usize = 80;
/// Height of the colour key's gradient.
const KEY_H: usize = 10;
/// Gap between a key label and the gradient.
const KEY_PAD: usize = 5;
/// Least gap between a title and its colour key.
const KEY_GAP: usize = 16;
/// Least pixels per time-step label and per row label.
const X_LABEL_SPACING: usize = 36;
const Y_LABEL_SPACING: usize = 30;

const TITLE_SIZE: f64 = 18.0;
const LABEL_SIZE: f64 = 14.0;
const X_DESC: &str = "time step";

const BACKGROUND: RGBColor = WHITE;
const INK: RGBColor = RGBColor(34, 34, 34);
const FRAME: RGBColor = RGBColor(120, 120, 120);

/// A matrix shown as a heatmap.
///
/// `values` is row-major with `rows * cols` entries: `values[row * cols + col]`.
/// Columns are time steps; rows are channels or memory locations, row 0 on top.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Title drawn above the heatmap.
    pub title: String,
    /// Number of rows (channels / memory locations).
    pub rows: usize,
    /// Number of columns (time steps).
    pub cols: usize,
    /// Row-major values, `rows * cols` of them.
    pub values: Vec<f32>,
    /// Colour range; values outside are clamped. `None` uses the data's min..max.
    pub range: Option<(f32, f32)>,
}

impl Panel {
    /// A panel from row-major values, coloured over the data's own range.
    ///
    /// The shape is checked when the figure is rendered.
    pub fn new(title: impl Into<String>, rows: usize, cols: usize, values: Vec<f32>) -> Self {
        Self {
            title: title.into(),
            rows,
            cols,
            values,
            range: None,
        }
    }

    /// A panel from time-major data, `steps[t][channel]`, as NTM runs
    /// usually record it; it is transposed so time runs left to right.
    ///
    /// Fails with [`PlotError::ShapeMismatch`] when the steps differ in length.
    pub fn from_time_major(
        title: impl Into<String>,
        steps: &[Vec<f32>],
    ) -> Result<Self, PlotError> {
        let title = title.into();
        let cols = steps.len();
        let rows = steps.first().map_or(0, Vec::len);
        if steps.iter().any(|s| s.len() != rows) {
            let got = steps.iter().map(Vec::len).sum();
            return Err(PlotError::ShapeMismatch {
                panel: title,
                expected: rows.saturating_mul(cols),
                got,
            });
        }
        let mut values = vec![0.0; rows * cols];
        for (t, step) in steps.iter().enumerate() {
            for (r, &v) in step.iter().enumerate() {
                values[r * cols + t] = v;
            }
        }
        Ok(Self::new(title, rows, cols, values))
    }

    /// The same panel with a fixed colour range, e.g. `(0.0, 1.0)` for
    /// weightings so that panels are comparable.
    pub fn with_range(mut self, lo: f32, hi: f32) -> Self {
        self.range = Some((lo, hi));
        self
    }

    /// Checks the panel and returns its colour range.
    fn validate(&self) -> Result<(f32, f32), PlotError> {
        if self.rows == 0 || self.cols == 0 {
            return Err(PlotError::Empty {
                what: format!(
                    "panel `{}` has {} rows and {} columns",
                    self.title, self.rows, self.cols
                ),
            });
        }
        let expected = self.rows.saturating_mul(self.cols);
        if self.values.len() != expected {
            return Err(PlotError::ShapeMismatch {
                panel: self.title.clone(),
                expected,
                got: self.values.len(),
            });
        }
        if let Some((i, &value)) = self.values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(PlotError::NonFinite {
                panel: self.title.clone(),
                row: i / self.cols,
                col: i % self.cols,
                value,
            });
        }
        match self.range {
            Some((lo, hi)) => {
                if lo.is_finite() && hi.is_finite() && lo < hi {
                    Ok((lo, hi))
                } else {
                    Err(PlotError::InvalidRange {
                        panel: self.title.clone(),
                        lo,
                        hi,
                    })
                }
            }
            None => Ok(self
                .values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                })),
        }
    }
}

/// Vertically stacked heatmap panels, each with its title and a colour key
/// of its value range above it, row indices on the left and time steps
/// below; the last panel's time axis is titled.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Panels from top to bottom.
    pub panels: Vec<Panel>,
    /// Pixels per heatmap cell (0 counts as 1). It is reduced automatically
    /// when the figure would exceed [`MAX_WIDTH`] x [`MAX_HEIGHT`].
    pub cell: usize,
}

impl Default for Figure {
    fn default() -> Self {
        Self {
            panels: Vec::new(),
            cell: DEFAULT_CELL,
        }
    }
}

/// Where a panel lands in the image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PanelPos {
    /// Top of the title band.
    pub title_y: usize,
    /// Left of cell (0, 0).
    pub heat_x: usize,
    /// Top of cell (0, 0).
    pub heat_y: usize,
    /// Left of the colour key's gradient; its top is centred in the title band.
    pub key_x: usize,
}

/// Pixel layout of a figure.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub width: usize,
    pub height: usize,
    pub cell: usize,
    pub panels: Vec<PanelPos>,
}

/// Colour of a value normalised to `0..=1` (clamped; non-finite is 0).
pub(crate) fn colour(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ViridisRGB::get_color(t)
}

/// The labels of a panel's colour key.
fn key_labels(lo: f32, hi: f32) -> (String, String) {
    (fmt_plain(f64::from(lo)), fmt_plain(f64::from(hi)))
}

/// Top of the colour key's gradient in a title band starting at `title_y`.
fn key_top(title_y: usize) -> usize {
    title_y + (TITLE_H - KEY_H) / 2
}

impl Figure {
    /// A figure of `panels` with the default cell size.
    pub fn new(panels: Vec<Panel>) -> Self {
        Self {
            panels,
            ..Self::default()
        }
    }

    /// Validates every panel and returns their colour ranges.
    fn validate(&self) -> Result<Vec<(f32, f32)>, PlotError> {
        if self.panels.is_empty() {
            return Err(PlotError::Empty {
                what: "figure has no panels".into(),
            });
        }
        self.panels.iter().map(Panel::validate).collect()
    }

    /// Computes the layout; the panels must already be validated and the
    /// font registered.
    pub(crate) fn layout(&self, ranges: &[(f32, f32)]) -> Result<Layout, PlotError> {
        let n = self.panels.len();
        let max_cols = self.panels.iter().map(|p| p.cols).max().unwrap_or(0).max(1);
        let total_rows = self
            .panels
            .iter()
            .fold(0usize, |acc, p| acc.saturating_add(p.rows))
            .max(1);
        let heat_x = MARGIN + Y_LABEL_W;
        let overhead_w = heat_x + RIGHT_PAD;
        let overhead_h = (2 * MARGIN + X_DESC_H)
            .saturating_add(n.saturating_mul(TITLE_H + X_LABEL_H))
            .saturating_add((n - 1).saturating_mul(PANEL_GAP));

        let fit_w = MAX_WIDTH.saturating_sub(overhead_w) / max_cols;
        let fit_h = MAX_HEIGHT.saturating_sub(overhead_h) / total_rows;
        let cell = self.cell.max(1).min(fit_w).min(fit_h);
        if cell == 0 {
            return Err(PlotError::TooLarge {
                width: overhead_w.saturating_add(max_cols),
                height: overhead_h.saturating_add(total_rows),
                max_width: MAX_WIDTH,
                max_height: MAX_HEIGHT,
            });
        }

        let mut y = MARGIN;
        let mut content_w = 0usize;
        let mut panels = Vec::with_capacity(n);
        for (i, (p, &(lo, hi))) in self.panels.iter().zip(ranges).enumerate() {
            if i > 0 {
                y += PANEL_GAP;
            }
            let title_w = font::text_width(&font::clean(&p.title), TITLE_SIZE, FontStyle::Bold)?;
            let (lo_label, hi_label) = key_labels(lo, hi);
            let key_lo_w = font::text_width(&lo_label, LABEL_SIZE, FontStyle::Normal)? + KEY_PAD;
            let key_hi_w = font::text_width(&hi_label, LABEL_SIZE, FontStyle::Normal)? + KEY_PAD;
            let heat_w = p.cols * cell;
            // The key ends at the heatmap's right edge unless the title needs the room.
            let key_end = heat_w.max(title_w.saturating_add(KEY_GAP + key_lo_w + KEY_W + key_hi_w));
            content_w = content_w.max(key_end);
            panels.push(PanelPos {
                title_y: y,
                heat_x,
                heat_y: y + TITLE_H,
                key_x: heat_x + key_end - key_hi_w - KEY_W,
            });
            y += TITLE_H + p.rows * cell + X_LABEL_H;
        }
        Ok(Layout {
            width: heat_x
                .saturating_add(content_w)
                .saturating_add(RIGHT_PAD)
                .min(MAX_WIDTH),
            height: y + X_DESC_H + MARGIN,
            cell,
            panels,
        })
    }

    /// Renders the figure into an RGB pixel buffer (row-major, 3 bytes per
    /// pixel) and returns it with its layout.
    pub(crate) fn render_rgb(&self) -> Result<(Layout, Vec<u8>), PlotError> {
        let ranges = self.validate()?;
        font::ensure_registered()?;
        let layout = self.layout(&ranges)?;
        let mut rgb = vec![255u8; layout.width * layout.height * 3];
        {
            // Both dimensions are capped far below u32::MAX.
            let size = (layout.width as u32, layout.height as u32);
            let backend = Raster::new(&mut rgb, size)
                .ok_or_else(|| PlotError::Draw("pixel buffer too small".into()))?;
            let root = backend.into_drawing_area();
            root.fill(&BACKGROUND).map_err(draw_err)?;
            let last = self.panels.len() - 1;
            for (i, ((panel, pos), &range)) in self
                .panels
                .iter()
                .zip(&layout.panels)
                .zip(&ranges)
                .enumerate()
            {
                draw_panel(&root, panel, pos, layout.cell, range, i == last)?;
            }
            root.present().map_err(draw_err)?;
        }
        Ok((layout, rgb))
    }

    /// Renders the figure as PNG file bytes.
    ///
    /// Fails with [`PlotError::Empty`], [`PlotError::ShapeMismatch`],
    /// [`PlotError::NonFinite`] or [`PlotError::InvalidRange`] on bad panels and
    /// with [`PlotError::TooLarge`] when even one pixel per cell is too big.
    pub fn render_png(&self) -> Result<Vec<u8>, PlotError> {
        let (layout, rgb) = self.render_rgb()?;
        let mut out = Vec::new();
        {
            let mut encoder =
                png::Encoder::new(&mut out, layout.width as u32, layout.height as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header()?;
            writer.write_image_data(&rgb)?;
            writer.finish()?;
        }
        Ok(out)
    }

    /// Renders the figure and writes it to `path` as a PNG file.
    pub fn save_png(&self, path: &Path) -> Result<(), PlotError> {
        let bytes = self.render_png()?;
        std::fs::write(path, bytes)?;
        Ok(())
    }
}

/// Draws one panel: title, colour key, cells, axes and tick labels.
fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panel: &Panel,
    pos: &PanelPos,
    cell: usize,
    (lo, hi): (f32, f32),
    last: bool,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let px = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    let label_style = font::regular(LABEL_SIZE).color(&INK);

    // Title, vertically centred in its band.
    let title_style = font::bold(TITLE_SIZE)
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    root.draw(&Text::new(
        font::clean(&panel.title),
        (px(pos.heat_x), px(pos.title_y + TITLE_H / 2)),
        title_style,
    ))
    .map_err(draw_err)?;

    // Colour key: `lo [gradient] hi`.
    let (kx, ky) = (px(pos.key_x), px(key_top(pos.title_y)));
    let (kw, kh) = (px(KEY_W), px(KEY_H));
    for x in 0..kw {
        root.draw(&Rectangle::new(
            [(kx + x, ky), (kx + x + 1, ky + kh)],
            colour((f64::from(x) + 0.5) / f64::from(kw)).filled(),
        ))
        .map_err(draw_err)?;
    }
    root.draw(&Rectangle::new(
        [(kx - 1, ky - 1), (kx + kw, ky + kh)],
        FRAME,
    ))
    .map_err(draw_err)?;
    let (lo_label, hi_label) = key_labels(lo, hi);
    let mid = ky + kh / 2;
    root.draw(&Text::new(
        lo_label,
        (kx - px(KEY_PAD), mid),
        label_style.pos(Pos::new(HPos::Right, VPos::Center)),
    ))
    .map_err(draw_err)?;
    root.draw(&Text::new(
        hi_label,
        (kx + kw + px(KEY_PAD), mid),
        label_style.pos(Pos::new(HPos::Left, VPos::Center)),
    ))
    .map_err(draw_err)?;

    // The heatmap with its axes: the area left of and under the cells holds
    // the tick labels, so the plotting area is exactly the cells.
    let (heat_w, heat_h) = (panel.cols * cell, panel.rows * cell);
    let x_label_h = X_LABEL_H + if last { X_DESC_H } else { 0 };
    let area = root.clone().shrink(
        (px(pos.heat_x - Y_LABEL_W), px(pos.heat_y)),
        (px(Y_LABEL_W + heat_w), px(heat_h + x_label_h)),
    );
    let mut chart = ChartBuilder::on(&area)
        .x_label_area_size(px(x_label_h))
        .y_label_area_size(px(Y_LABEL_W))
        .build_cartesian_2d(
            Cells {
                n: panel.cols,
                flip: false,
            },
            Cells {
                n: panel.rows,
                flip: true,
            },
        )
        .map_err(draw_err)?;

    let span = f64::from(hi) - f64::from(lo);
    let cols = panel.cols;
    chart
        .draw_series(panel.values.iter().enumerate().map(|(i, &v)| {
            let (r, c) = ((i / cols) as f64, (i % cols) as f64);
            let t = if span > 0.0 {
                (f64::from(v) - f64::from(lo)) / span
            } else {
                0.5
            };
            Rectangle::new([(c, r), (c + 1.0, r + 1.0)], colour(t).filled())
        }))
        .map_err(draw_err)?;

    let mut mesh = chart.configure_mesh();
    mesh.disable_mesh()
        .x_labels((heat_w / X_LABEL_SPACING).max(1))
        .y_labels((heat_h / Y_LABEL_SPACING).max(2))
        .label_style(label_style.clone())
        .axis_desc_style(font::regular(LABEL_SIZE + 1.0).color(&INK))
        .axis_style(FRAME)
        .set_all_tick_mark_size(3);
    if last {
        mesh.x_desc(X_DESC);
    }
    mesh.draw().map_err(draw_err)?;

    // Close the frame along the top and right edges.
    let (x0, y0) = (px(pos.heat_x), px(pos.heat_y));
    let (x1, y1) = (x0 + px(heat_w), y0 + px(heat_h));
    root.draw(&PathElement::new(
        vec![(x0 - 1, y0 - 1), (x1, y0 - 1), (x1, y1)],
        FRAME,
    ))
    .map_err(draw_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Decoded {
        width: usize,
        height: usize,
        rgb: Vec<u8>,
    }

    impl Decoded {
        fn pixel(&self, x: usize, y: usize) -> RGBColor {
            let i = (y * self.width + x) * 3;
            RGBColor(self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
        }

        /// Non-background pixels in rows `y0..y1` and columns `x0..x1`.
        fn ink(&self, (x0, x1): (usize, usize), (y0, y1): (usize, usize)) -> usize {
            (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                .filter(|&(x, y)| self.pixel(x, y) != BACKGROUND)
                .count()
        }
    }

    fn decode(bytes: &[u8]) -> Decoded {
        let decoder = png::Decoder::new(bytes);
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("png frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        Decoded {
            width: info.width as usize,
            height: info.height as usize,
            rgb: buf,
        }
    }

    fn layout_of(fig: &Figure) -> Layout {
        font::ensure_registered().unwrap();
        fig.layout(&fig.validate().unwrap()).unwrap()
    }

    /// Centre pixel of cell (row, col) of panel `p`.
    fn cell_centre(layout: &Layout, p: usize, row: usize, col: usize) -> (usize, usize) {
        let pos = layout.panels[p];
        (
            pos.heat_x + col * layout.cell + layout.cell / 2,
            pos.heat_y + row * layout.cell + layout.cell / 2,
        )
    }

    fn ramp_panel(title: &str, rows: usize, cols: usize) -> Panel {
        let values = (0..rows * cols).map(|i| i as f32).collect();
        Panel::new(title, rows, cols, values)
    }

    #[test]
    fn png_has_expected_size_and_colours() {
        let fig = Figure::new(vec![
            ramp_panel("inputs", 3, 40),
            ramp_panel("write weightings", 8, 4),
        ]);
        let layout = layout_of(&fig);
        let img = decode(&fig.render_png().unwrap());
        assert_eq!((img.width, img.height), (layout.width, layout.height));
        assert_eq!(layout.cell, DEFAULT_CELL);
        let expected_h =
            2 * MARGIN + 2 * (TITLE_H + X_LABEL_H) + PANEL_GAP + X_DESC_H + (3 + 8) * DEFAULT_CELL;
        assert_eq!(img.height, expected_h);
        assert!(img.width >= MARGIN + Y_LABEL_W + 40 * DEFAULT_CELL + RIGHT_PAD);

        // Every cell shows its own value: the min and max cells of the first
        // panel use the two ends of the colour map.
        let (xa, ya) = cell_centre(&layout, 0, 0, 0);
        let (xb, yb) = cell_centre(&layout, 0, 2, 39);
        assert_eq!(img.pixel(xa, ya), colour(0.0));
        assert_eq!(img.pixel(xb, yb), colour(1.0));
        let (x, y) = cell_centre(&layout, 0, 1, 0);
        assert_eq!(img.pixel(x, y), colour(40.0 / 119.0));
        // Cells fill whole pixel squares: all corners of a cell share its colour.
        let pos = layout.panels[1];
        for (dx, dy) in [(0, 0), (DEFAULT_CELL - 1, 0), (0, DEFAULT_CELL - 1)] {
            let (x, y) = (
                pos.heat_x + 2 * DEFAULT_CELL + dx,
                pos.heat_y + DEFAULT_CELL + dy,
            );
            assert_eq!(img.pixel(x, y), colour(6.0 / 31.0), "offset {dx},{dy}");
        }

        // The second panel is narrower: right of it is background.
        let (x, y) = cell_centre(&layout, 1, 3, 10);
        assert_eq!(img.pixel(x, y), BACKGROUND);
    }

    #[test]
    fn panels_have_titles_keys_and_tick_labels() {
        let fig = Figure::new(vec![ramp_panel("READS (0)", 20, 30), ramp_panel("", 2, 30)]);
        let layout = layout_of(&fig);
        let img = decode(&fig.render_png().unwrap());
        let (p0, p1) = (layout.panels[0], layout.panels[1]);
        // The band above the frame, left of the key.
        let title_band = |p: PanelPos| img.ink((p.heat_x, p.key_x - 30), (p.title_y, p.heat_y - 1));
        assert!(title_band(p0) > 50, "title text pixels expected");
        assert_eq!(title_band(p1), 0, "an empty title leaves its place blank");

        // The colour key runs from the low to the high end of the colour map.
        let ky = key_top(p0.title_y) + KEY_H / 2;
        assert_eq!(img.pixel(p0.key_x, ky), colour(0.5 / KEY_W as f64));
        assert_eq!(
            img.pixel(p0.key_x + KEY_W - 1, ky),
            colour(1.0 - 0.5 / KEY_W as f64)
        );

        // Row labels left of the cells and time-step labels under them.
        let heat_h = 20 * layout.cell;
        let left = img.ink((MARGIN, p0.heat_x - 4), (p0.heat_y, p0.heat_y + heat_h));
        assert!(left > 30, "row tick labels expected, got {left} pixels");
        let below = img.ink(
            (p0.heat_x, p0.heat_x + 30 * layout.cell),
            (p0.heat_y + heat_h + 4, p0.heat_y + heat_h + X_LABEL_H),
        );
        assert!(
            below > 30,
            "time-step tick labels expected, got {below} pixels"
        );
        // The last panel also carries the axis title under its labels.
        let bottom = p1.heat_y + 2 * layout.cell + X_LABEL_H;
        let desc = img.ink((0, img.width), (bottom, bottom + X_DESC_H));
        assert!(desc > 30, "x axis title expected, got {desc} pixels");
    }

    #[test]
    fn explicit_range_clamps_and_flat_data_is_mid_ramp() {
        let fig = Figure::new(vec![
            Panel::new("w", 1, 3, vec![-5.0, 0.5, 9.0]).with_range(0.0, 1.0),
            Panel::new("flat", 1, 2, vec![3.0, 3.0]),
        ]);
        let layout = layout_of(&fig);
        let img = decode(&fig.render_png().unwrap());
        let at = |p, c| {
            let (x, y) = cell_centre(&layout, p, 0, c);
            img.pixel(x, y)
        };
        assert_eq!(at(0, 0), colour(0.0));
        assert_eq!(at(0, 1), colour(0.5));
        assert_eq!(at(0, 2), colour(1.0));
        assert_eq!(at(1, 0), colour(0.5));
    }

    #[test]
    fn wide_figures_shrink_the_cell_to_fit() {
        let fig = Figure::new(vec![Panel::new("long run", 2, 2000, vec![0.5; 4000])]);
        let layout = layout_of(&fig);
        assert!(layout.cell < DEFAULT_CELL);
        assert!(layout.width <= MAX_WIDTH);
        let img = decode(&fig.render_png().unwrap());
        assert!(img.width <= MAX_WIDTH && img.height <= MAX_HEIGHT);
    }

    #[test]
    fn too_many_columns_is_an_error() {
        let cols = MAX_WIDTH;
        let fig = Figure::new(vec![Panel::new("huge", 1, cols, vec![0.0; cols])]);
        match fig.render_png() {
            Err(PlotError::TooLarge { width, .. }) => assert!(width > MAX_WIDTH),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn zero_cell_counts_as_one() {
        let mut fig = Figure::new(vec![ramp_panel("a", 2, 3)]);
        fig.cell = 0;
        assert_eq!(layout_of(&fig).cell, 1);
        assert!(fig.render_png().is_ok());
    }

    #[test]
    fn long_titles_are_clipped_to_the_width_limit() {
        let title = "x".repeat(10_000);
        let fig = Figure::new(vec![Panel::new(title, 1, 1, vec![0.0])]);
        let img = decode(&fig.render_png().unwrap());
        assert_eq!(img.width, MAX_WIDTH);
    }

    #[test]
    fn colours_follow_viridis() {
        assert_eq!(colour(0.0), RGBColor(68, 1, 84));
        assert_eq!(colour(1.0), RGBColor(254, 232, 37));
        assert_eq!(colour(-3.0), colour(0.0));
        assert_eq!(colour(f64::NAN), colour(0.0));
        let luma = |c: RGBColor| 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
        let mut prev = luma(colour(0.0));
        for i in 1..=100 {
            let l = luma(colour(i as f64 / 100.0));
            assert!(l >= prev - 0.5, "lightness dropped at {i}: {prev} -> {l}");
            prev = l;
        }
    }
}
