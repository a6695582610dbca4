//! Stacked heatmap panels rendered to PNG.

use std::path::Path;

use crate::{colormap, font, PlotError};

/// Largest width, in pixels, of a rendered figure.
pub const MAX_WIDTH: usize = 4000;
/// Largest height, in pixels, of a rendered figure.
pub const MAX_HEIGHT: usize = 8000;

/// Default pixels per heatmap cell.
pub const DEFAULT_CELL: usize = 6;

const MARGIN: usize = 10;
const FONT_SCALE: usize = 2;
const TITLE_H: usize = font::GLYPH_H * FONT_SCALE;
const TITLE_GAP: usize = 4;
const PANEL_GAP: usize = 12;
/// Width of the frame drawn around each heatmap.
const FRAME: usize = 1;

const BACKGROUND: [u8; 3] = [255, 255, 255];
const TEXT: [u8; 3] = [34, 34, 34];
const FRAME_COLOUR: [u8; 3] = [150, 150, 150];

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

/// Vertically stacked heatmap panels, each with its title above it,
/// aligned to the left edge.
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
    /// Top of the title text.
    pub title_y: usize,
    /// Left of cell (0, 0).
    pub heat_x: usize,
    /// Top of cell (0, 0).
    pub heat_y: usize,
}

/// Pixel layout of a figure.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub width: usize,
    pub height: usize,
    pub cell: usize,
    pub panels: Vec<PanelPos>,
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

    /// Computes the layout; the panels must already be validated.
    pub(crate) fn layout(&self) -> Result<Layout, PlotError> {
        let n = self.panels.len();
        let max_cols = self.panels.iter().map(|p| p.cols).max().unwrap_or(0).max(1);
        let total_rows = self
            .panels
            .iter()
            .fold(0usize, |acc, p| acc.saturating_add(p.rows))
            .max(1);
        let per_panel = TITLE_H + TITLE_GAP + 2 * FRAME;
        let overhead_h = (2 * MARGIN)
            .saturating_add(n.saturating_mul(per_panel))
            .saturating_add((n - 1).saturating_mul(PANEL_GAP));
        let overhead_w = 2 * MARGIN + 2 * FRAME;

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

        let heat_w = max_cols * cell + 2 * FRAME;
        let title_w = self
            .panels
            .iter()
            .map(|p| font::text_width(&p.title, FONT_SCALE))
            .max()
            .unwrap_or(0);
        let width = (heat_w.max(title_w) + 2 * MARGIN).min(MAX_WIDTH);

        let mut y = MARGIN;
        let mut panels = Vec::with_capacity(n);
        for (i, p) in self.panels.iter().enumerate() {
            if i > 0 {
                y += PANEL_GAP;
            }
            let title_y = y;
            y += TITLE_H + TITLE_GAP;
            panels.push(PanelPos {
                title_y,
                heat_x: MARGIN + FRAME,
                heat_y: y + FRAME,
            });
            y += p.rows * cell + 2 * FRAME;
        }
        Ok(Layout {
            width,
            height: y + MARGIN,
            cell,
            panels,
        })
    }

    /// Renders the figure to an RGB pixel buffer (row-major, 3 bytes per pixel).
    pub(crate) fn render_rgb(&self) -> Result<(Layout, Vec<u8>), PlotError> {
        let ranges = self.validate()?;
        let layout = self.layout()?;
        let mut canvas = Canvas::new(layout.width, layout.height);
        let cell = layout.cell;
        for ((panel, pos), &(lo, hi)) in self.panels.iter().zip(&layout.panels).zip(&ranges) {
            font::for_each_pixel(
                &panel.title,
                MARGIN,
                pos.title_y,
                FONT_SCALE,
                layout.width,
                |x, y| canvas.set(x, y, TEXT),
            );
            let w = panel.cols * cell;
            let h = panel.rows * cell;
            canvas.frame(
                pos.heat_x - FRAME,
                pos.heat_y - FRAME,
                w + 2 * FRAME,
                h + 2 * FRAME,
            );
            let span = hi - lo;
            for r in 0..panel.rows {
                for c in 0..panel.cols {
                    let v = panel.values[r * panel.cols + c];
                    let t = if span > 0.0 { (v - lo) / span } else { 0.5 };
                    canvas.fill(
                        pos.heat_x + c * cell,
                        pos.heat_y + r * cell,
                        cell,
                        cell,
                        colormap::ramp(t),
                    );
                }
            }
        }
        Ok((layout, canvas.data))
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
            // Both dimensions are capped far below u32::MAX.
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

/// An RGB image filled with the background colour.
struct Canvas {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        let mut data = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            data.extend_from_slice(&BACKGROUND);
        }
        Self {
            width,
            height,
            data,
        }
    }

    fn set(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 3;
            self.data[i..i + 3].copy_from_slice(&rgb);
        }
    }

    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, rgb: [u8; 3]) {
        let x_end = x.saturating_add(w).min(self.width);
        let y_end = y.saturating_add(h).min(self.height);
        for yy in y.min(y_end)..y_end {
            for xx in x.min(x_end)..x_end {
                let i = (yy * self.width + xx) * 3;
                self.data[i..i + 3].copy_from_slice(&rgb);
            }
        }
    }

    /// A one-pixel outline of the rectangle.
    fn frame(&mut self, x: usize, y: usize, w: usize, h: usize) {
        if w == 0 || h == 0 {
            return;
        }
        self.fill(x, y, w, 1, FRAME_COLOUR);
        self.fill(x, y + h - 1, w, 1, FRAME_COLOUR);
        self.fill(x, y, 1, h, FRAME_COLOUR);
        self.fill(x + w - 1, y, 1, h, FRAME_COLOUR);
    }
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
        fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
            let i = (y * self.width + x) * 3;
            [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
        }

        /// Non-background pixels in rows `y0..y1`.
        fn ink(&self, y0: usize, y1: usize) -> usize {
            (y0..y1)
                .flat_map(|y| (0..self.width).map(move |x| (x, y)))
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
            ramp_panel("inputs", 3, 10),
            ramp_panel("write weightings", 8, 4),
        ]);
        let layout = fig.layout().unwrap();
        let img = decode(&fig.render_png().unwrap());

        let title_w = font::text_width("write weightings", FONT_SCALE);
        let heat_w = 10 * DEFAULT_CELL + 2 * FRAME;
        assert_eq!(img.width, title_w.max(heat_w) + 2 * MARGIN);
        let expected_h =
            2 * MARGIN + 2 * (TITLE_H + TITLE_GAP + 2 * FRAME) + PANEL_GAP + (3 + 8) * DEFAULT_CELL;
        assert_eq!(img.height, expected_h);
        assert_eq!((img.width, img.height), (layout.width, layout.height));

        // Min and max cells of the first panel use the two ends of the ramp.
        let (xa, ya) = cell_centre(&layout, 0, 0, 0);
        let (xb, yb) = cell_centre(&layout, 0, 2, 9);
        assert_eq!(img.pixel(xa, ya), colormap::ramp(0.0));
        assert_eq!(img.pixel(xb, yb), colormap::ramp(1.0));
        assert_ne!(img.pixel(xa, ya), img.pixel(xb, yb));

        // The second panel is narrower: right of it is background.
        let (x, y) = cell_centre(&layout, 1, 0, 6);
        assert_eq!(img.pixel(x, y), BACKGROUND);
    }

    #[test]
    fn titles_are_drawn_in_the_title_band() {
        let fig = Figure::new(vec![ramp_panel("READS (0)", 2, 5), ramp_panel("", 2, 5)]);
        let layout = fig.layout().unwrap();
        let img = decode(&fig.render_png().unwrap());
        let band = |p: usize| {
            let y = layout.panels[p].title_y;
            img.ink(y, y + TITLE_H)
        };
        assert!(band(0) > 20, "title text pixels expected, got {}", band(0));
        assert_eq!(band(1), 0, "an empty title leaves the band blank");
    }

    #[test]
    fn explicit_range_clamps_and_flat_data_is_mid_ramp() {
        let fig = Figure::new(vec![
            Panel::new("w", 1, 3, vec![-5.0, 0.5, 9.0]).with_range(0.0, 1.0),
            Panel::new("flat", 1, 2, vec![3.0, 3.0]),
        ]);
        let layout = fig.layout().unwrap();
        let img = decode(&fig.render_png().unwrap());
        let at = |p, c| {
            let (x, y) = cell_centre(&layout, p, 0, c);
            img.pixel(x, y)
        };
        assert_eq!(at(0, 0), colormap::ramp(0.0));
        assert_eq!(at(0, 1), colormap::ramp(0.5));
        assert_eq!(at(0, 2), colormap::ramp(1.0));
        assert_eq!(at(1, 0), colormap::ramp(0.5));
    }

    #[test]
    fn wide_figures_shrink_the_cell_to_fit() {
        let fig = Figure::new(vec![Panel::new("long run", 2, 2000, vec![0.5; 4000])]);
        let layout = fig.layout().unwrap();
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
        assert_eq!(fig.layout().unwrap().cell, 1);
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
