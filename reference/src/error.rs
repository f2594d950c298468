//! The reference forward pass's one error type.

/// Why a model could not be opened or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The checkpoint could not be read.
    #[error(transparent)]
    Read(#[from] wharf_converters::Error),
    /// A tensor's stored bytes could not be decoded.
    #[error("tensor `{name}`: {reason}")]
    Decode {
        /// The stored tensor.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A weight the architecture needs is absent.
    #[error("missing weight `{0}`")]
    MissingWeight(String),
    /// A weight's shape does not fit the model description.
    #[error("weight `{name}` has shape {actual:?}, expected {expected:?}")]
    Shape {
        /// The logical weight.
        name: String,
        /// What the model description implies.
        expected: Vec<usize>,
        /// What the checkpoint holds.
        actual: Vec<usize>,
    },
    /// The input has no model description (no `config.json`, unknown GGUF architecture ...).
    #[error("cannot describe the model: {0}")]
    Spec(String),
    /// A token id is not below the vocabulary size.
    #[error("token id {id} is out of range for a vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// The request itself is unusable (no tokens, context too long ...).
    #[error("invalid request: {0}")]
    Request(String),
    /// The tokenizer could not be built or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<wharf_core::Error> for Error {
    fn from(e: wharf_core::Error) -> Self {
        Error::Read(wharf_converters::from_core(e))
    }
}
