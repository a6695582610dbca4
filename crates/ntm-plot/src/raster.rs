//! The drawing backend of the PNG figures: plotters' RGB bitmap backend,
//! with text set by [`font::Line`].
//!
//! Plotters' own `ab_glyph` text drawing places each glyph's ink at the pen
//! position without the glyph's side bearing, which spreads digits such as
//! `10` apart; this backend positions every glyph by its outline bounds
//! instead. Everything else goes straight to the bitmap backend.

use plotters::backend::{BitMapBackend, DrawingBackend, RGBPixel};
use plotters::style::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

use crate::font;

/// An RGB bitmap in a caller-owned buffer.
pub(crate) struct Raster<'a> {
    inner: BitMapBackend<'a, RGBPixel>,
}

type Inner<'a> = BitMapBackend<'a, RGBPixel>;
type Error<'a> = DrawingErrorKind<<Inner<'a> as DrawingBackend>::ErrorType>;

impl<'a> Raster<'a> {
    /// A backend drawing into `buf`, 3 bytes per pixel, row-major; `None`
    /// when `buf` is too small for `size`.
    pub fn new(buf: &'a mut [u8], size: (u32, u32)) -> Option<Self> {
        let inner = BitMapBackend::<RGBPixel>::with_buffer_and_format(buf, size).ok()?;
        Some(Self { inner })
    }
}

fn font_error<E: std::error::Error + Send + Sync>(e: crate::PlotError) -> DrawingErrorKind<E> {
    DrawingErrorKind::FontError(Box::new(e))
}

impl<'a> DrawingBackend for Raster<'a> {
    type ErrorType = <Inner<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), Error<'a>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), Error<'a>> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), Error<'a>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.inner.fill_polygon(vert, style)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), Error<'a>> {
        let colour = style.color();
        if colour.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let line = font::Line::new(text, style.size(), style.style()).map_err(font_error)?;
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -line.width / 2.0,
            HPos::Right => -line.width,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0.0,
            VPos::Center => -line.height / 2.0,
            VPos::Bottom => -line.height,
        };
        let (dx, dy) = (dx.round() as i32, dy.round() as i32);
        let transform = style.transform();
        let (w, h) = self.get_size();
        let (w, h) = (
            i32::try_from(w).unwrap_or(i32::MAX),
            i32::try_from(h).unwrap_or(i32::MAX),
        );
        let mut result = Ok(());
        for glyph in &line.glyphs {
            let bounds = glyph.px_bounds();
            let (x0, y0) = (bounds.min.x as i32 + dx, bounds.min.y as i32 + dy);
            glyph.draw(|gx, gy, coverage| {
                if result.is_err() || coverage <= 0.0 {
                    return;
                }
                let (x, y) = transform.transform(x0 + gx as i32, y0 + gy as i32);
                let (x, y) = (pos.0.saturating_add(x), pos.1.saturating_add(y));
                if (0..w).contains(&x) && (0..h).contains(&y) {
                    let color = BackendColor {
                        alpha: colour.alpha * f64::from(coverage.min(1.0)),
                        rgb: colour.rgb,
                    };
                    result = self.inner.draw_pixel((x, y), color);
                }
            });
            if result.is_err() {
                break;
            }
        }
        result
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), Error<'a>> {
        let line = font::Line::new(text, style.size(), style.style()).map_err(font_error)?;
        Ok((
            line.width.ceil().max(0.0) as u32,
            line.height.ceil().max(0.0) as u32,
        ))
    }
}
