//! Figures for Neural Turing Machine training runs, drawn with
//! [plotters](https://docs.rs/plotters).
//!
//! Two kinds of output:
//!
//! * **PNG heatmaps** ([`Figure`] of [`Panel`]s): matrices in rows, in the
//!   style of the copy-task figures of Graves et al. (2014) — inputs, targets,
//!   outputs, write and read weightings over time, with the panels of a row
//!   (one per head, say) side by side ([`Figure::grid`]). Time runs
//!   left to right and rows (channels or memory locations) top to bottom,
//!   with tick labels on both axes; values use the viridis colour map (dark
//!   purple for low, yellow for high), and each panel's title sits beside a
//!   colour key of its value range.
//! * **SVG line charts** ([`LineChart`] of [`Series`]): learning curves with
//!   axes, plotters' round-valued ticks with compact labels (`200k`, `1.2M`),
//!   axis titles, a legend, optional translucent spread bands (e.g. over
//!   seeds) and an optional log10 y axis.
//!
//! All text is set in DejaVu Sans, compiled into the library (the `dejavu`
//! crate) and laid out with `ab_glyph`: no system font is looked up, so a
//! figure comes out the same on a machine without fonts.
//!
//! Bad input (empty or mis-shaped panels, NaN values) gives a [`PlotError`];
//! nothing here prints or panics on user data.
//!
//! ```
//! use ntm_plot::{Figure, LineChart, Panel, Series};
//!
//! // Two time steps of a 3-channel input and a 4-slot write weighting.
//! let inputs = Panel::new("inputs", 3, 2, vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
//! let writes = Panel::from_time_major(
//!     "write weightings",
//!     &[vec![0.9, 0.1, 0.0, 0.0], vec![0.0, 0.8, 0.2, 0.0]],
//! )?
//! .with_range(0.0, 1.0);
//! let png = Figure::new(vec![inputs, writes]).render_png()?;
//! assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
//!
//! let mut chart = LineChart::new("copy task", "sequences", "cost (bits/seq)");
//! chart.series.push(Series::new("NTM", vec![(0.0, 40.0), (100_000.0, 2.0)]));
//! let svg = chart.to_svg()?;
//! assert!(svg.contains("<svg") && svg.contains("100k"));
//! # Ok::<(), ntm_plot::PlotError>(())
//! ```

mod chart;
mod error;
mod font;
mod heatmap;
mod raster;

pub use chart::{LineChart, Series, CHART_HEIGHT, CHART_WIDTH};
pub use error::PlotError;
pub use heatmap::{Figure, Panel, DEFAULT_CELL, MAX_HEIGHT, MAX_WIDTH};
