//! The backend of the PNG figures: plotters' bitmap backend with its own
//! text setting.
//!
//! Plotters 0.3.7 draws `ab_glyph` text with each glyph's ink at the pen
//! position, dropping the glyph's left side bearing, so that narrow glyphs
//! shift left and words fall apart (`1 0`, `l ength`) at any font size; it
//! also sets bold text in the regular face. This backend sets text itself,
//! each glyph where the font puts it, and hands pixels and rectangles (which
//! it fills fast and end-exclusive) to the bitmap backend; plotters
//! rasterises everything else onto those pixels.

use ab_glyph::{point, Font, FontRef, OutlinedGlyph, ScaleFont};
use plotters::backend::{BitMapBackend, DrawingBackend};
use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::FontStyle;
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

use crate::PlotError;

/// An RGB bitmap in a caller-owned buffer, 3 bytes per pixel.
pub(crate) struct Raster<'a>(pub BitMapBackend<'a>);

type Error<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

/// One line of text: glyph outlines placed with the top of the line at
/// y = 0 and the pen starting at x = 0, and the line's width and height.
fn set_line(
    text: &str,
    size: f64,
    style: FontStyle,
) -> Result<(Vec<OutlinedGlyph>, f32, f32), PlotError> {
    let bytes = match style {
        FontStyle::Bold => dejavu::sans::bold(),
        _ => dejavu::sans::regular(),
    };
    let font = FontRef::try_from_slice(bytes).map_err(|e| PlotError::Draw(e.to_string()))?;
    // Plotters' font size is 1.24 em (its SVG backend writes `size / 1.24`);
    // ab_glyph scales by ascent - descent.
    let em = (size / 1.24).max(0.0) as f32;
    let scale = em * font.height_unscaled() / font.units_per_em().unwrap_or(1.0);
    let font = font.into_scaled(scale);
    let mut glyphs = Vec::new();
    let mut caret = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            caret += font.kern(p, id);
        }
        let glyph = id.with_scale_and_position(font.scale, point(caret, font.ascent()));
        glyphs.extend(font.outline_glyph(glyph));
        caret += font.h_advance(id);
        prev = Some(id);
    }
    Ok((glyphs, caret, font.ascent() - font.descent()))
}

/// Width and height in whole pixels of `text` at plotters font size `size`.
pub(crate) fn text_size(text: &str, size: f64, style: FontStyle) -> Result<(u32, u32), PlotError> {
    let (_, w, h) = set_line(text, size, style)?;
    Ok((w.ceil() as u32, h.ceil() as u32))
}

fn font_error<'a>(e: PlotError) -> Error<'a> {
    DrawingErrorKind::FontError(Box::new(e))
}

impl<'a> DrawingBackend for Raster<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), Error<'a>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), Error<'a>> {
        self.0.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), Error<'a>> {
        self.0.draw_pixel(point, color)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Error<'a>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), Error<'a>> {
        let (glyphs, width, height) =
            set_line(text, style.size(), style.style()).map_err(font_error)?;
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        let (colour, transform, (w, h)) = (style.color(), style.transform(), self.get_size());
        let mut result = Ok(());
        for glyph in &glyphs {
            let min = glyph.px_bounds().min;
            let (x0, y0) = ((min.x + dx).round() as i32, (min.y + dy).round() as i32);
            glyph.draw(|gx, gy, coverage| {
                let (x, y) = transform.transform(x0 + gx as i32, y0 + gy as i32);
                let (x, y) = (pos.0.saturating_add(x), pos.1.saturating_add(y));
                if result.is_ok() && x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                    let alpha = colour.alpha * f64::from(coverage.min(1.0));
                    result = self.0.draw_pixel((x, y), BackendColor { alpha, ..colour });
                }
            });
        }
        result
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), Error<'a>> {
        text_size(text, style.size(), style.style()).map_err(font_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_sit_at_their_advances_and_bold_is_wider() {
        // "11": the second glyph's ink starts one advance after the first's,
        // and the first keeps its left side bearing.
        let (glyphs, width, height) = set_line("11", 62.0, FontStyle::Normal).unwrap();
        let (a, b) = (glyphs[0].px_bounds(), glyphs[1].px_bounds());
        assert!(a.min.x > 2.0, "a '1' has a left side bearing");
        assert!(((b.min.x - a.min.x) - width / 2.0).abs() <= 1.0);
        assert!(a.min.y >= 0.0 && a.max.y <= height, "ink within the line");
        let (regular, _) = text_size("seen", 14.0, FontStyle::Normal).unwrap();
        let (bold, _) = text_size("seen", 14.0, FontStyle::Bold).unwrap();
        assert!(bold > regular && regular > 0);
        assert_eq!(text_size("", 14.0, FontStyle::Normal).unwrap().0, 0);
    }
}
