//! The one typeface of every figure: DejaVu Sans, embedded through the
//! `dejavu` crate.
//!
//! It is registered with plotters' `ab_glyph` font table, which plotters
//! measures text with (the SVG charts name the family as
//! `DejaVu Sans, sans-serif` and are laid out with its metrics), and
//! [`Line`] sets text with it for the PNG figures (see `raster.rs`). No
//! system font is ever looked up, so a figure comes out the same on a
//! machine without fonts.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, OutlinedGlyph, PxScale, ScaleFont};
use plotters::style::{register_font, FontStyle, IntoFont, TextStyle};

use crate::PlotError;

/// The family name every text element uses. It doubles as a CSS font list in
/// SVG output; plotters' `ab_glyph` backend looks it up verbatim.
pub(crate) const FAMILY: &str = "DejaVu Sans, sans-serif";

/// Plotters' font sizes are 1.24 times the em size (the SVG backend writes
/// `font-size = size / 1.24`); the PNG text follows the same rule.
const SIZE_PER_EM: f64 = 1.24;

struct Faces {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

/// The parsed faces, once per process; `None` if they failed to parse or
/// register.
fn faces() -> Option<&'static Faces> {
    static FACES: OnceLock<Option<Faces>> = OnceLock::new();
    FACES
        .get_or_init(|| {
            let (regular, bold) = (dejavu::sans::regular(), dejavu::sans::bold());
            // "sans-serif" backs the defaults plotters falls back to internally.
            for name in [FAMILY, "sans-serif"] {
                register_font(name, FontStyle::Normal, regular).ok()?;
                register_font(name, FontStyle::Bold, bold).ok()?;
            }
            Some(Faces {
                regular: FontRef::try_from_slice(regular).ok()?,
                bold: FontRef::try_from_slice(bold).ok()?,
            })
        })
        .as_ref()
}

fn unavailable() -> PlotError {
    PlotError::Draw("the embedded DejaVu Sans font could not be loaded".into())
}

/// Registers the embedded fonts with plotters. Must run before any
/// [`TextStyle`] is made, since plotters looks fonts up when a style is built.
pub(crate) fn ensure_registered() -> Result<(), PlotError> {
    faces().map(|_| ()).ok_or_else(unavailable)
}

/// Regular text of plotters font size `size`.
pub(crate) fn regular(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().into()
}

/// Bold text of plotters font size `size`.
pub(crate) fn bold(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().style(FontStyle::Bold).into()
}

/// One line of text set in DejaVu Sans: its glyph outlines, positioned with
/// the top of the line at y = 0 and the origin of the first glyph at x = 0.
pub(crate) struct Line {
    pub glyphs: Vec<OutlinedGlyph>,
    /// Sum of the advances (with kerning).
    pub width: f32,
    /// Ascent minus descent.
    pub height: f32,
}

impl Line {
    /// Sets `text` at plotters font size `size`, bold for [`FontStyle::Bold`].
    pub fn new(text: &str, size: f64, style: FontStyle) -> Result<Self, PlotError> {
        let faces = faces().ok_or_else(unavailable)?;
        let font = match style {
            FontStyle::Bold => &faces.bold,
            _ => &faces.regular,
        };
        let em = (size / SIZE_PER_EM).max(0.0) as f32;
        let units = font.units_per_em().unwrap_or(1000.0);
        let scale = PxScale::from(em * font.height_unscaled() / units);
        let scaled = font.as_scaled(scale);
        let ascent = scaled.ascent();
        let mut glyphs = Vec::new();
        let mut caret = 0.0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                caret += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scale, point(caret, ascent));
            caret += scaled.h_advance(id);
            prev = Some(id);
            if let Some(outline) = scaled.outline_glyph(glyph) {
                glyphs.push(outline);
            }
        }
        Ok(Line {
            glyphs,
            width: caret,
            height: ascent - scaled.descent(),
        })
    }
}

/// Width in whole pixels of `text` at plotters font size `size`.
pub(crate) fn text_width(text: &str, size: f64, style: FontStyle) -> Result<usize, PlotError> {
    Ok(Line::new(text, size, style)?.width.ceil().max(0.0) as usize)
}

/// Text as it can be drawn: line breaks and tabs become spaces and other
/// control characters (which XML 1.0 does not allow) are dropped.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => None,
            c => Some(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_registers_and_measures_text() {
        ensure_registered().unwrap();
        ensure_registered().unwrap();
        let short = text_width("1k", 14.0, FontStyle::Normal).unwrap();
        let long = text_width("sequences seen", 14.0, FontStyle::Normal).unwrap();
        assert!(short > 0 && long > 4 * short, "{short} vs {long}");
        assert!(
            text_width("seen", 14.0, FontStyle::Bold).unwrap()
                > text_width("seen", 14.0, FontStyle::Normal).unwrap()
        );
        assert_eq!(text_width("", 14.0, FontStyle::Normal).unwrap(), 0);
        // Plotters measures with the registered font too.
        let (w, _) = regular(14.0).font.box_size("sequences seen").unwrap();
        assert!(w > 50, "{w}");
    }

    #[test]
    fn glyphs_sit_at_their_advances() {
        // "11": the second glyph's ink starts one advance after the first's.
        let line = Line::new("11", 62.0, FontStyle::Normal).unwrap();
        assert_eq!(line.glyphs.len(), 2);
        let (a, b) = (line.glyphs[0].px_bounds(), line.glyphs[1].px_bounds());
        let advance = line.width / 2.0;
        assert!(a.min.x > 0.0, "a '1' has a left side bearing");
        assert!(((b.min.x - a.min.x) - advance).abs() <= 1.0);
        // Ink lies within the line box.
        assert!(a.min.y >= 0.0 && a.max.y <= line.height);
    }

    #[test]
    fn cleaning_drops_control_characters() {
        assert_eq!(clean("a\u{0}b\u{7}c\td\ne"), "abc d e");
        assert_eq!(clean("<&> ok"), "<&> ok");
    }
}
