//! Errors of the tensor model.

use crate::DType;

/// A size computation that cannot be carried out exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// `n` elements do not fill whole blocks of `dtype`.
    #[error("{n} elements of {dtype} do not fill whole blocks of {block}", block = dtype.layout().elems)]
    PartialBlock {
        /// The storage type.
        dtype: DType,
        /// Number of elements asked for.
        n: u64,
    },
    /// The innermost dimension does not fill whole blocks (GGML rows must).
    #[error("row length {row} of {dtype} is not a multiple of its block size {block}", block = dtype.layout().elems)]
    PartialRow {
        /// The storage type.
        dtype: DType,
        /// Innermost dimension.
        row: u64,
    },
    /// A product or sum does not fit in 64 bits.
    #[error("size overflows 64 bits")]
    Overflow,
}

/// Errors raised by tensor sources and sinks.
///
/// Format-specific errors travel boxed in [`Error::Format`] so callers can downcast them to the
/// reader's own typed error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A size computation failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The source has no tensor of that name.
    #[error("no tensor named `{name}`")]
    TensorNotFound {
        /// The missing name.
        name: String,
    },
    /// A sink received a tensor out of its declared order, or a wrong number of bytes.
    #[error("tensor `{name}`: {reason}")]
    SinkOrder {
        /// The tensor being written.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A tensor's dtype cannot be converted as asked.
    #[error("tensor `{name}`: cannot convert {from} to {to}")]
    Unconvertible {
        /// Tensor name.
        name: String,
        /// Stored dtype.
        from: DType,
        /// Wanted dtype.
        to: DType,
    },
    /// An error of the format behind a source or sink.
    #[error(transparent)]
    Format(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// Wraps a format-specific error.
    pub fn format(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Format(Box::new(err))
    }
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
