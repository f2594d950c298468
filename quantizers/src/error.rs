//! Errors of the quantization codecs.

use wharf_core::DType;

/// Why a quantization or dequantization could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    /// Input and output lengths do not fit the codec's block structure.
    #[error("{dtype}: {what}: expected {expected}, got {actual}")]
    Length {
        /// Storage being produced or read.
        dtype: DType,
        /// Which buffer.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// The codec does not handle this storage.
    #[error("{0} is not supported by this codec")]
    Unsupported(DType),
    /// The input holds NaN or infinity, which would poison a scale.
    #[error("non-finite value at element {index}")]
    NonFinite {
        /// Index of the first bad element.
        index: usize,
    },
    /// A parameter (group size, bit width, block shape) is out of range.
    #[error("invalid parameter: {0}")]
    Parameter(String),
}

/// Result with [`QuantError`].
pub type Result<T, E = QuantError> = std::result::Result<T, E>;
