//! Size overrides for generalisation tests.

use std::fmt;
use std::str::FromStr;

use crate::TaskError;

/// Overrides a task's training distribution, e.g. to test generalisation to longer sequences.
///
/// Parsed by [`FromStr`]: `"40"` is [`Size::Length(40)`](Size::Length) and `"10x20"` (or
/// `"10X20"`) is `Size::Repeat { length: 10, repeats: 20 }`. [`Display`](fmt::Display) writes
/// the same forms, so the two round-trip. With serde it is (de)serialised as that string; a bare
/// integer is also accepted when deserialising.
///
/// What "length" means depends on the task: the sequence length for copy and repeat copy, the
/// number of items for associative recall, the number of bits for N-grams and the number of
/// input vectors for priority sort.
///
/// ```
/// use ntm_tasks::Size;
/// let s: Size = "10x20".parse().unwrap();
/// assert_eq!(s, Size::Repeat { length: 10, repeats: 20 });
/// assert_eq!(s.to_string(), "10x20");
/// assert_eq!("40".parse::<Size>().unwrap(), Size::Length(40));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    /// A fixed length (its meaning depends on the task).
    Length(usize),
    /// A fixed length and number of repeats (repeat copy).
    Repeat {
        /// Sequence length.
        length: usize,
        /// Number of repeats.
        repeats: usize,
    },
}

impl Size {
    /// The length part of the size.
    pub fn length(&self) -> usize {
        match *self {
            Size::Length(length) | Size::Repeat { length, .. } => length,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Length(length) => write!(f, "{length}"),
            Size::Repeat { length, repeats } => write!(f, "{length}x{repeats}"),
        }
    }
}

fn parse_count(part: &str) -> Option<usize> {
    // `usize::from_str` accepts a leading `+`; insist on plain digits.
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

impl FromStr for Size {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || TaskError::InvalidSize {
            input: s.to_owned(),
        };
        let trimmed = s.trim();
        match trimmed.split_once(['x', 'X']) {
            None => parse_count(trimmed).map(Size::Length).ok_or_else(invalid),
            Some((length, repeats)) => {
                let length = parse_count(length.trim()).ok_or_else(invalid)?;
                let repeats = parse_count(repeats.trim()).ok_or_else(invalid)?;
                Ok(Size::Repeat { length, repeats })
            }
        }
    }
}

impl serde::Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl serde::de::Visitor<'_> for SizeVisitor {
            type Value = Size;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"40\" or \"10x20\", or a non-negative integer")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                usize::try_from(v)
                    .map(Size::Length)
                    .map_err(|_| E::custom(format!("size {v} is too large")))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                usize::try_from(v)
                    .map(Size::Length)
                    .map_err(|_| E::custom(format!("size {v} must be a non-negative integer")))
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}
