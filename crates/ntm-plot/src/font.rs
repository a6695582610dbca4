//! The one typeface of every figure: DejaVu Sans, embedded through the
//! `dejavu` crate and registered with plotters' `ab_glyph` font table, so no
//! system font is ever looked up.

use plotters::style::{register_font, FontStyle, IntoFont, TextStyle};

use crate::PlotError;

/// The family name every text element uses. It doubles as a CSS font list in
/// SVG output; plotters' `ab_glyph` backend looks it up verbatim.
pub(crate) const FAMILY: &str = "DejaVu Sans, sans-serif";

/// Registers the embedded fonts with plotters, which measures the SVG
/// charts' text with them.
pub(crate) fn ensure_registered() -> Result<(), PlotError> {
    // "sans-serif" backs the defaults plotters falls back to internally.
    for name in [FAMILY, "sans-serif"] {
        for (style, bytes) in [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
        ] {
            register_font(name, style, bytes).map_err(|_| {
                PlotError::Draw("the embedded DejaVu Sans font could not be loaded".into())
            })?;
        }
    }
    Ok(())
}

/// Regular text of plotters font size `size`.
pub(crate) fn regular(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().into()
}

/// Bold text of plotters font size `size`.
pub(crate) fn bold(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().style(FontStyle::Bold).into()
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
        let (w, _) = regular(14.0).font.box_size("sequences seen").unwrap();
        let (short, _) = regular(14.0).font.box_size("1k").unwrap();
        assert!(short > 0 && w > 4 * short, "{short} vs {w}");
    }

    #[test]
    fn cleaning_drops_control_characters() {
        assert_eq!(clean("a\u{0}b\u{7}c\td\ne"), "abc d e");
        assert_eq!(clean("<&> ok"), "<&> ok");
    }
}
