//! The error type shared by the PNG and SVG renderers.

/// Everything that can go wrong while building or saving a figure.
#[derive(thiserror::Error, Debug)]
pub enum PlotError {
    /// There is nothing to draw: a figure without panels, a panel with zero
    /// rows or columns, or a chart without a single drawable point.
    #[error("nothing to plot: {what}")]
    Empty {
        /// What was found empty.
        what: String,
    },

    /// A panel's `values` does not hold `rows * cols` numbers.
    #[error("panel `{panel}`: expected {expected} values (rows x cols), got {got}")]
    ShapeMismatch {
        /// Title of the offending panel.
        panel: String,
        /// The number of values its shape calls for.
        expected: usize,
        /// The number of values it holds.
        got: usize,
    },

    /// A heatmap value is NaN or infinite.
    #[error("panel `{panel}`: non-finite value {value} at row {row}, column {col}")]
    NonFinite {
        /// Title of the offending panel.
        panel: String,
        /// Row of the value.
        row: usize,
        /// Column (time step) of the value.
        col: usize,
        /// The value itself.
        value: f32,
    },

    /// An explicit colour range is not finite or not increasing.
    #[error("panel `{panel}`: invalid colour range {lo}..{hi} (needs finite lo < hi)")]
    InvalidRange {
        /// Title of the offending panel.
        panel: String,
        /// Lower end of the range as given.
        lo: f32,
        /// Upper end of the range as given.
        hi: f32,
    },

    /// The figure would exceed the size limit even at one pixel per cell.
    #[error(
        "figure needs at least {width}x{height} pixels at 1 pixel per cell; \
         the limit is {max_width}x{max_height}"
    )]
    TooLarge {
        /// Smallest width the figure could have.
        width: usize,
        /// Smallest height the figure could have.
        height: usize,
        /// Largest width allowed ([`crate::MAX_WIDTH`]).
        max_width: usize,
        /// Largest height allowed ([`crate::MAX_HEIGHT`]).
        max_height: usize,
    },

    /// Writing the output file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },

    /// The PNG encoder failed.
    #[error("png encoding failed: {0}")]
    Png(#[from] png::EncodingError),

    /// Plotters failed to draw (a backend or font error).
    #[error("drawing failed: {0}")]
    Draw(String),
}

/// Writes `bytes` to `path`, naming the file in an error.
pub(crate) fn write_file(path: &std::path::Path, bytes: impl AsRef<[u8]>) -> Result<(), PlotError> {
    std::fs::write(path, bytes).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Converts a plotters drawing error.
pub(crate) fn draw_err<E>(e: plotters::drawing::DrawingAreaErrorKind<E>) -> PlotError
where
    E: std::error::Error + Send + Sync,
{
    PlotError::Draw(e.to_string())
}
