//! A tiny built-in 5x7 bitmap font for panel titles.
//!
//! Lower-case letters other than `x` are drawn as capitals; characters
//! without a glyph are drawn as `?`.

/// Glyph width in font pixels.
pub(crate) const GLYPH_W: usize = 5;
/// Glyph height in font pixels.
pub(crate) const GLYPH_H: usize = 7;
/// Horizontal advance per character in font pixels (glyph plus one blank column).
pub(crate) const ADVANCE: usize = GLYPH_W + 1;

type Glyph = [&'static str; GLYPH_H];

#[rustfmt::skip]
const GLYPHS: &[(char, Glyph)] = &[
    ('A', [" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"]),
    ('B', ["#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "]),
    ('C', [" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "]),
    ('D', ["#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "]),
    ('E', ["#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"]),
    ('F', ["#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "]),
    ('G', [" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"]),
    ('H', ["#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"]),
    ('I', [" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "]),
    ('J', ["  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "]),
    ('K', ["#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"]),
    ('L', ["#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"]),
    ('M', ["#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"]),
    ('N', ["#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"]),
    ('O', [" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "]),
    ('P', ["#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "]),
    ('Q', [" ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #"]),
    ('R', ["#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"]),
    ('S', [" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "]),
    ('T', ["#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "]),
    ('U', ["#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "]),
    ('V', ["#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "]),
    ('W', ["#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # "]),
    ('X', ["#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"]),
    ('Y', ["#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "]),
    ('Z', ["#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"]),
    ('0', [" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "]),
    ('1', ["  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "]),
    ('2', [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"]),
    ('3', ["#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "]),
    ('4', ["   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "]),
    ('5', ["#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "]),
    ('6', ["  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "]),
    ('7', ["#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "]),
    ('8', [" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "]),
    ('9', [" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "]),
    (' ', ["     ", "     ", "     ", "     ", "     ", "     ", "     "]),
    ('-', ["     ", "     ", "     ", "#####", "     ", "     ", "     "]),
    ('_', ["     ", "     ", "     ", "     ", "     ", "     ", "#####"]),
    ('.', ["     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "]),
    (',', ["     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   "]),
    (':', ["     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "]),
    ('(', ["   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "]),
    (')', [" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "]),
    ('/', ["    #", "    #", "   # ", "  #  ", " #   ", "#    ", "#    "]),
    ('x', ["     ", "     ", "#   #", " # # ", "  #  ", " # # ", "#   #"]),
    ('=', ["     ", "     ", "#####", "     ", "#####", "     ", "     "]),
    ('+', ["     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "]),
    ('%', ["##   ", "##  #", "   # ", "  #  ", " #   ", "#  ##", "   ##"]),
    ('[', [" ### ", " #   ", " #   ", " #   ", " #   ", " #   ", " ### "]),
    (']', [" ### ", "   # ", "   # ", "   # ", "   # ", "   # ", " ### "]),
    ('\'', ["  #  ", "  #  ", "     ", "     ", "     ", "     ", "     "]),
    ('!', ["  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "     ", "  #  "]),
    ('?', [" ### ", "#   #", "    #", "   # ", "  #  ", "     ", "  #  "]),
];

/// The glyph drawn for `c`.
fn glyph(c: char) -> &'static Glyph {
    let find = |k: char| GLYPHS.iter().find(|(g, _)| *g == k).map(|(_, rows)| rows);
    find(c)
        .or_else(|| find(c.to_ascii_uppercase()))
        .or_else(|| find('?'))
        .unwrap_or(&GLYPHS[0].1)
}

/// Width in image pixels of `text` drawn at `scale` (no trailing blank column).
pub(crate) fn text_width(text: &str, scale: usize) -> usize {
    let n = text.chars().count();
    if n == 0 {
        0
    } else {
        n.saturating_mul(ADVANCE)
            .saturating_sub(1)
            .saturating_mul(scale)
    }
}

/// Calls `plot(x, y)` for every lit image pixel of `text` whose top-left
/// corner is at `(x0, y0)`; stops early once glyphs start beyond `max_x`.
pub(crate) fn for_each_pixel(
    text: &str,
    x0: usize,
    y0: usize,
    scale: usize,
    max_x: usize,
    mut plot: impl FnMut(usize, usize),
) {
    let step = ADVANCE * scale;
    for (i, c) in text.chars().enumerate() {
        let gx = x0.saturating_add(i.saturating_mul(step));
        if gx >= max_x {
            break;
        }
        for (row, bits) in glyph(c).iter().enumerate() {
            for (col, b) in bits.bytes().enumerate() {
                if b != b'#' {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        plot(gx + col * scale + dx, y0 + row * scale + dy);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_glyph_is_5x7_and_unique() {
        for (i, (c, rows)) in GLYPHS.iter().enumerate() {
            for r in rows {
                assert_eq!(r.len(), GLYPH_W, "glyph {c:?} row {r:?}");
                assert!(r.bytes().all(|b| b == b' ' || b == b'#'), "glyph {c:?}");
            }
            assert!(
                GLYPHS[i + 1..].iter().all(|(d, _)| d != c),
                "duplicate glyph {c:?}"
            );
        }
    }

    #[test]
    fn required_characters_are_covered() {
        let required = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.,:()/x=";
        for c in required.chars() {
            assert!(GLYPHS.iter().any(|(g, _)| *g == c), "missing {c:?}");
        }
        // Lower case maps to capitals, unknown characters to '?'.
        assert_eq!(glyph('q'), glyph('Q'));
        assert_eq!(glyph('~'), glyph('?'));
        assert_ne!(glyph('x'), glyph('X'));
    }

    #[test]
    fn width_and_pixels_agree() {
        assert_eq!(text_width("", 2), 0);
        assert_eq!(text_width("AB", 1), 11);
        let mut max_x = 0;
        let mut count = 0;
        for_each_pixel("AB", 0, 0, 2, usize::MAX, |x, _| {
            max_x = max_x.max(x);
            count += 1;
        });
        assert!(count > 0);
        assert!(max_x < text_width("AB", 2));
        let mut none = 0;
        for_each_pixel("   ", 0, 0, 2, usize::MAX, |_, _| none += 1);
        assert_eq!(none, 0);
    }
}
