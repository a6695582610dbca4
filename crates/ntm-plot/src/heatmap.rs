//! Stacked heatmap panels rendered to PNG with plotters' bitmap backend.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::chart::compact;
use crate::error::draw_err;
use crate::raster::{text_size, Raster};
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
/// Left edge of every heatmap.
const HEAT_X: usize = MARGIN + Y_LABEL_W;
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

/// Heatmap panels in rows: each panel with its title and a colour key of its
/// value range above it, row indices on the left and time steps below; the
/// panels of a row stand side by side, and the last row's time axes are
/// titled.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Rows of panels from top to bottom, each row's panels from left to right.
    pub rows: Vec<Vec<Panel>>,
    /// Pixels per heatmap cell (0 counts as 1). It is reduced automatically
    /// when the figure would exceed [`MAX_WIDTH`] x [`MAX_HEIGHT`].
    pub cell: usize,
}

impl Default for Figure {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            cell: DEFAULT_CELL,
        }
    }
}

/// Where a panel lands in the image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PanelPos {
    /// Left of cell (0, 0); its row labels stand left of it.
    pub heat_x: usize,
    /// Top of the title band.
    pub title_y: usize,
    /// Top of cell (0, 0).
    pub heat_y: usize,
    /// Left of the colour key's gradient; it is centred in the title band.
    pub key_x: usize,
    /// Whether the panel is in the last row, whose time axes are titled.
    pub last: bool,
}

/// Pixel layout of a figure.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub width: usize,
    pub height: usize,
    pub cell: usize,
    /// Every panel's place, row after row.
    pub panels: Vec<PanelPos>,
}

/// The colour of `v` in the colour range `lo..hi` (mid-range when flat).
fn colour(v: f64, (lo, hi): (f32, f32)) -> RGBColor {
    if lo < hi {
        ViridisRGB::get_color_normalized(v, lo.into(), hi.into())
    } else {
        ViridisRGB::get_color(0.5)
    }
}

/// The labels of a colour key for the range `lo..hi`.
fn key_labels((lo, hi): (f32, f32)) -> [String; 2] {
    [compact(&lo.into()), compact(&hi.into())]
}

fn text_width(text: &str, size: f64, style: FontStyle) -> Result<usize, PlotError> {
    Ok(text_size(text, size, style)?.0 as usize)
}

impl Figure {
    /// A figure of `panels` stacked one above the other, with the default cell size.
    pub fn new(panels: Vec<Panel>) -> Self {
        Self::grid(panels.into_iter().map(|p| vec![p]).collect())
    }

    /// A figure of rows of panels side by side (e.g. one row per kind of head, a panel per
    /// head), with the default cell size.
    pub fn grid(rows: Vec<Vec<Panel>>) -> Self {
        Self {
            rows,
            ..Self::default()
        }
    }

    /// Every panel, row after row.
    fn panels(&self) -> impl Iterator<Item = &Panel> {
        self.rows.iter().flatten()
    }

    /// Validates every panel and returns their colour ranges.
    fn validate(&self) -> Result<Vec<(f32, f32)>, PlotError> {
        if self.rows.is_empty() || self.rows.iter().any(Vec::is_empty) {
            return Err(PlotError::Empty {
                what: "figure has no panels, or a row without panels".into(),
            });
        }
        self.panels().map(Panel::validate).collect()
    }

    /// Computes the layout of validated panels with colour ranges `ranges`.
    pub(crate) fn layout(&self, ranges: &[(f32, f32)]) -> Result<Layout, PlotError> {
        let n = self.rows.len();
        let tallest = |row: &Vec<Panel>| row.iter().map(|p| p.rows).max().unwrap_or(0);
        // Per row: the cells across, and the pixels beside the cells.
        let across =
            |row: &Vec<Panel>| row.iter().fold(0usize, |acc, p| acc.saturating_add(p.cols));
        let beside = |row: &Vec<Panel>| (Y_LABEL_W + RIGHT_PAD) * row.len() + MARGIN;
        let total_rows = self
            .rows
            .iter()
            .fold(0usize, |acc, row| acc.saturating_add(tallest(row)))
            .max(1);
        let overhead_h = (2 * MARGIN + X_DESC_H)
            .saturating_add(n.saturating_mul(TITLE_H + X_LABEL_H))
            .saturating_add((n - 1).saturating_mul(PANEL_GAP));

        let fit_w = self
            .rows
            .iter()
            .map(|row| MAX_WIDTH.saturating_sub(beside(row)) / across(row).max(1))
            .min()
            .unwrap_or(0);
        let fit_h = MAX_HEIGHT.saturating_sub(overhead_h) / total_rows;
        let cell = self.cell.max(1).min(fit_w).min(fit_h);
        if cell == 0 {
            let widest = self.rows.iter().max_by_key(|row| across(row));
            return Err(PlotError::TooLarge {
                width: widest.map_or(0, |row| beside(row).saturating_add(across(row))),
                height: overhead_h.saturating_add(total_rows),
                max_width: MAX_WIDTH,
                max_height: MAX_HEIGHT,
            });
        }

        let mut y = MARGIN;
        let mut width = 0usize;
        let mut panels = Vec::with_capacity(ranges.len());
        let mut ranges = ranges.iter();
        for (r, row) in self.rows.iter().enumerate() {
            let mut x = HEAT_X;
            for (p, &range) in row.iter().zip(ranges.by_ref()) {
                let title_w = text_width(&font::clean(&p.title), TITLE_SIZE, FontStyle::Bold)?;
                let [lo, hi] = key_labels(range);
                let key_lo_w = text_width(&lo, LABEL_SIZE, FontStyle::Normal)? + KEY_PAD;
                let key_hi_w = text_width(&hi, LABEL_SIZE, FontStyle::Normal)? + KEY_PAD;
                // The key ends at the heatmap's right edge unless the title needs the room.
                let key_end = (p.cols * cell)
                    .max(title_w.saturating_add(KEY_GAP + key_lo_w + KEY_W + key_hi_w));
                panels.push(PanelPos {
                    heat_x: x,
                    title_y: y,
                    heat_y: y + TITLE_H,
                    key_x: x + key_end - key_hi_w - KEY_W,
                    last: r + 1 == n,
                });
                width = width.max(x.saturating_add(key_end).saturating_add(RIGHT_PAD));
                x = x.saturating_add(key_end + RIGHT_PAD + Y_LABEL_W);
            }
            y += TITLE_H + tallest(row) * cell + X_LABEL_H + PANEL_GAP;
        }
        Ok(Layout {
            width: width.min(MAX_WIDTH),
            height: y - PANEL_GAP + X_DESC_H + MARGIN,
            cell,
            panels,
        })
    }

    /// Renders the figure into an RGB pixel buffer (row-major, 3 bytes per
    /// pixel) and returns it with its layout.
    pub(crate) fn render_rgb(&self) -> Result<(Layout, Vec<u8>), PlotError> {
        let ranges = self.validate()?;
        let layout = self.layout(&ranges)?;
        let mut rgb = vec![255u8; layout.width * layout.height * 3];
        {
            // Both dimensions are capped far below u32::MAX.
            let size = (layout.width as u32, layout.height as u32);
            let root = Raster(BitMapBackend::with_buffer(&mut rgb, size)).into_drawing_area();
            for ((panel, pos), range) in self.panels().zip(&layout.panels).zip(ranges) {
                draw_panel(&root, panel, pos, layout.cell, range)?;
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
        let mut encoder = png::Encoder::new(&mut out, layout.width as u32, layout.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // Heatmaps are runs of flat cells: the strongest compression with a filter chosen per
        // line makes the file several times smaller, for little time at these sizes.
        encoder.set_compression(png::Compression::Best);
        encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rgb)?;
        writer.finish()?;
        Ok(out)
    }

    /// Renders the figure and writes it to `path` as a PNG file.
    pub fn save_png(&self, path: &Path) -> Result<(), PlotError> {
        let bytes = self.render_png()?;
        crate::error::write_file(path, bytes)?;
        Ok(())
    }
}

/// Draws one panel: title, colour key, cells, axes and tick labels.
fn draw_panel(
    root: &DrawingArea<Raster, Shift>,
    panel: &Panel,
    pos: &PanelPos,
    cell: usize,
    range: (f32, f32),
) -> Result<(), PlotError> {
    // The layout keeps every coordinate far below i32::MAX.
    let px = |v: usize| v as i32;
    let label_style = font::regular(LABEL_SIZE).color(&INK);

    // Title, then the colour key `lo [gradient] hi`, centred in the title band.
    let mid = px(pos.title_y + TITLE_H / 2);
    let at = |h| Pos::new(h, VPos::Center);
    let title = font::bold(TITLE_SIZE).color(&INK).pos(at(HPos::Left));
    root.draw(&Text::new(
        font::clean(&panel.title),
        (px(pos.heat_x), mid),
        title,
    ))
    .map_err(draw_err)?;
    let (kx, ky) = (px(pos.key_x), mid - px(KEY_H / 2));
    for x in 0..px(KEY_W) {
        let c = ViridisRGB::get_color((f64::from(x) + 0.5) / KEY_W as f64);
        root.draw(&Rectangle::new(
            [(kx + x, ky), (kx + x + 1, ky + px(KEY_H))],
            c.filled(),
        ))
        .map_err(draw_err)?;
    }
    root.draw(&Rectangle::new(
        [(kx - 1, ky - 1), (kx + px(KEY_W), ky + px(KEY_H))],
        FRAME,
    ))
    .map_err(draw_err)?;
    let [lo, hi] = key_labels(range);
    let (left, right) = (kx - px(KEY_PAD), kx + px(KEY_W + KEY_PAD));
    for (label, x, h) in [(lo, left, HPos::Right), (hi, right, HPos::Left)] {
        let style = label_style.pos(at(h));
        root.draw(&Text::new(label, (x, mid), style))
            .map_err(draw_err)?;
    }

    // The heatmap with its axes: the area left of and under the cells holds
    // the tick labels, so the plotting area is exactly the cells. Cell
    // (r, c) is centred on (c, r), so that plotters' round ticks fall on cell
    // centres; each axis's range is 1/cell short of whole cells because
    // plotters maps it onto the first to the last pixel, one pixel fewer
    // than the cells take, and this way every cell gets `cell` pixels.
    let (heat_w, heat_h) = (panel.cols * cell, panel.rows * cell);
    let x_label_h = X_LABEL_H + if pos.last { X_DESC_H } else { 0 };
    let area = root.clone().shrink(
        (px(pos.heat_x - Y_LABEL_W), px(pos.heat_y)),
        (px(Y_LABEL_W + heat_w), px(heat_h + x_label_h)),
    );
    let end = |n: usize| n as f64 - 0.5 - 1.0 / cell as f64;
    let mut chart = ChartBuilder::on(&area)
        .x_label_area_size(px(x_label_h))
        .y_label_area_size(px(Y_LABEL_W))
        .build_cartesian_2d(-0.5..end(panel.cols), end(panel.rows)..-0.5)
        .map_err(draw_err)?;

    let cols = panel.cols;
    chart
        .draw_series(panel.values.iter().enumerate().map(|(i, &v)| {
            let (r, c) = ((i / cols) as f64, (i % cols) as f64);
            let fill = colour(v.into(), range).filled();
            Rectangle::new([(c - 0.5, r - 0.5), (c + 0.5, r + 0.5)], fill)
        }))
        .map_err(draw_err)?;

    let index = |v: &f64| format!("{}", v.round().max(0.0) as usize);
    let mut mesh = chart.configure_mesh();
    // At most one label per cell keeps plotters' tick step at whole cells.
    mesh.disable_mesh()
        .x_labels((heat_w / X_LABEL_SPACING).clamp(1, panel.cols))
        .y_labels((heat_h / Y_LABEL_SPACING).max(2).min(panel.rows))
        .x_label_formatter(&index)
        .y_label_formatter(&index)
        .label_style(label_style.clone())
        .axis_desc_style(font::regular(LABEL_SIZE + 1.0).color(&INK))
        .axis_style(FRAME)
        .set_all_tick_mark_size(3);
    if pos.last {
        mesh.x_desc("time step");
    }
    mesh.draw().map_err(draw_err)
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
                .filter(|&(x, y)| self.pixel(x, y) != WHITE)
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

    fn viridis(t: f64) -> RGBColor {
        ViridisRGB::get_color(t)
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
        assert_eq!(img.pixel(xa, ya), viridis(0.0));
        assert_eq!(img.pixel(xb, yb), viridis(1.0));
        let (x, y) = cell_centre(&layout, 0, 1, 0);
        assert_eq!(img.pixel(x, y), viridis(40.0 / 119.0));
        // Cells fill whole pixel squares: all corners of a cell share its colour.
        let pos = layout.panels[1];
        for (dx, dy) in [(0, 0), (DEFAULT_CELL - 1, 0), (0, DEFAULT_CELL - 1)] {
            let (x, y) = (
                HEAT_X + 2 * DEFAULT_CELL + dx,
                pos.heat_y + DEFAULT_CELL + dy,
            );
            assert_eq!(img.pixel(x, y), viridis(6.0 / 31.0), "offset {dx},{dy}");
        }

        // The second panel is narrower: right of it is background.
        let (x, y) = cell_centre(&layout, 1, 3, 10);
        assert_eq!(img.pixel(x, y), WHITE);
    }

    #[test]
    fn panels_have_titles_keys_and_tick_labels() {
        let fig = Figure::new(vec![ramp_panel("READS (0)", 20, 30), ramp_panel("", 2, 30)]);
        let layout = layout_of(&fig);
        let img = decode(&fig.render_png().unwrap());
        let (p0, p1) = (layout.panels[0], layout.panels[1]);
        // The band above the frame, left of the key.
        let title_band = |p: PanelPos| img.ink((HEAT_X, p.key_x - 30), (p.title_y, p.heat_y - 1));
        assert!(title_band(p0) > 50, "title text pixels expected");
        assert_eq!(title_band(p1), 0, "an empty title leaves its place blank");

        // The colour key runs from the low to the high end of the colour map.
        let ky = p0.title_y + (TITLE_H - KEY_H) / 2 + KEY_H / 2;
        assert_eq!(img.pixel(p0.key_x, ky), viridis(0.5 / KEY_W as f64));
        assert_eq!(
            img.pixel(p0.key_x + KEY_W - 1, ky),
            viridis(1.0 - 0.5 / KEY_W as f64)
        );

        // Row labels left of the cells and time-step labels under them.
        let heat_h = 20 * layout.cell;
        let left = img.ink((MARGIN, HEAT_X - 4), (p0.heat_y, p0.heat_y + heat_h));
        assert!(left > 30, "row tick labels expected, got {left} pixels");
        let below = img.ink(
            (HEAT_X, HEAT_X + 30 * layout.cell),
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
    fn a_rows_panels_stand_side_by_side_under_the_row_above() {
        let fig = Figure::grid(vec![
            vec![ramp_panel("inputs", 3, 10)],
            vec![ramp_panel("head 0", 8, 10), ramp_panel("head 1", 5, 10)],
        ]);
        let layout = layout_of(&fig);
        let [top, left, right] = [0, 1, 2].map(|p| layout.panels[p]);
        assert_eq!(left.heat_y, right.heat_y, "one row, one height");
        assert!(left.heat_y > top.heat_y + 3 * layout.cell);
        assert!(right.heat_x > left.heat_x + 10 * layout.cell + Y_LABEL_W);
        assert!(!top.last && left.last && right.last);
        // The row is as tall as its tallest panel.
        let expected_h =
            2 * MARGIN + 2 * (TITLE_H + X_LABEL_H) + PANEL_GAP + X_DESC_H + (3 + 8) * DEFAULT_CELL;
        assert_eq!(layout.height, expected_h);

        // Each panel's cells are its own: the last cell of the right panel is its maximum,
        // and its row labels stand between the two heatmaps.
        let img = decode(&fig.render_png().unwrap());
        assert_eq!((img.width, img.height), (layout.width, layout.height));
        let (x, y) = cell_centre(&layout, 2, 4, 9);
        assert_eq!(img.pixel(x, y), viridis(1.0));
        let (x, y) = cell_centre(&layout, 1, 7, 9);
        assert_eq!(img.pixel(x, y), viridis(1.0));
        let labels = img.ink(
            (right.heat_x - Y_LABEL_W + 2, right.heat_x - 4),
            (right.heat_y, right.heat_y + 5 * layout.cell),
        );
        assert!(
            labels > 20,
            "row labels of the right panel, got {labels} pixels"
        );
    }

    #[test]
    fn heatmaps_compress_to_a_small_fraction_of_their_pixels() {
        // A weighting-like panel: one bright cell per step on a dark field.
        let (rows, cols) = (128, 200);
        let values = (0..rows * cols)
            .map(|i| f32::from(u8::from(i / cols == (i % cols) % rows)))
            .collect();
        let fig = Figure::new(vec![Panel::new("write weightings", rows, cols, values)]);
        let layout = layout_of(&fig);
        let bytes = fig.render_png().unwrap().len();
        let raw = layout.width * layout.height * 3;
        assert!(bytes * 50 < raw, "{bytes} bytes for {raw} bytes of pixels");
    }

    #[test]
    fn an_empty_row_is_an_error() {
        let fig = Figure::grid(vec![vec![ramp_panel("a", 2, 3)], vec![]]);
        assert!(matches!(fig.render_png(), Err(PlotError::Empty { .. })));
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
        assert_eq!(at(0, 0), viridis(0.0));
        assert_eq!(at(0, 1), viridis(0.5));
        assert_eq!(at(0, 2), viridis(1.0));
        assert_eq!(at(1, 0), viridis(0.5));
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
}
