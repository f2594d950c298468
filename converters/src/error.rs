//! The converters' error: a typed kind plus where it happened (file, tensor, byte offset).
//!
//! Every parser failure is one of the [`ErrorKind`] variants, so tests match variants with
//! `matches!` and the CLI prints one sentence naming the file, tensor and offset.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use wharf_core::LayoutError;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An operating-system error.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The input ends before a structure it announces (truncated or lying sizes).
    #[error("truncated: needs {need} bytes, {have} available")]
    Truncated {
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// A header or count exceeds a hard cap.
    #[error("{what} {value} exceeds the limit {cap}")]
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// The announced value.
        value: u64,
        /// The cap.
        cap: u64,
    },
    /// Bytes that do not parse as the format (bad JSON, bad UTF-8, bad magic).
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// Unsupported format version.
    #[error("unsupported {format} version {version}")]
    Version {
        /// Format name.
        format: &'static str,
        /// Version found.
        version: u64,
    },
    /// A name (tensor, key, zip entry, shard entry) appears twice.
    #[error("duplicate {what} `{name}`")]
    Duplicate {
        /// What kind of name.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Tensor regions overlap, leave holes, are misaligned or run out of range.
    #[error("bad data layout: {0}")]
    Layout(String),
    /// Bytes after the last tensor (polyglot or corrupted file).
    #[error("{extra} unexplained trailing bytes")]
    TrailingBytes {
        /// Count of extra bytes.
        extra: u64,
    },
    /// A shape or size computation overflowed or does not fit its storage.
    #[error(transparent)]
    Size(#[from] LayoutError),
    /// A dtype or ggml type this build does not read.
    #[error("unsupported dtype {0}")]
    UnsupportedDType(String),
    /// A metadata value of the wrong type or out of range.
    #[error("metadata `{key}`: {detail}")]
    Metadata {
        /// The key.
        key: String,
        /// Why.
        detail: String,
    },
    /// A path in the input points outside the folder it must stay in, or through a link.
    #[error("path `{0}` escapes the model folder or is a link")]
    PathEscape(String),
    /// A sharded index that does not agree with its shards.
    #[error("index: {0}")]
    Index(String),
    /// A model config wharf cannot use.
    #[error("config: {0}")]
    Config(String),
    /// An architecture wharf does not support.
    #[error("unsupported architecture `{0}` (supported: {list})", list = SUPPORTED)]
    UnknownArchitecture(String),
    /// The input is not a format wharf reads, or could be two of them.
    #[error("{0}")]
    UnknownFormat(String),
    /// The input holds no tensors.
    #[error("no tensors found")]
    Empty,
    /// The output would overwrite an input or an existing folder.
    #[error("refusing to write: {0}")]
    Output(String),
    /// A tensor wharf cannot convert as asked.
    #[error("{0}")]
    Unconvertible(String),
    /// Something in the input that would run code or reach outside it (a pickle global not on
    /// the allow-list, a zip symlink, an unsafe entry name).
    #[error("refused {what}: checkpoints are read as data only")]
    Unsafe {
        /// What was refused, e.g. "global `posix.system`".
        what: String,
    },
}

const SUPPORTED: &str = "LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM, DeepseekV2ForCausalLM, DeepseekV3ForCausalLM";

/// A converter error with its location.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    file: Option<PathBuf>,
    tensor: Option<String>,
    offset: Option<u64>,
}

impl Error {
    /// A new error of `kind` with no location yet.
    pub fn new(kind: ErrorKind) -> Self {
        Error {
            kind,
            file: None,
            tensor: None,
            offset: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The file, if known.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The tensor, if known.
    pub fn tensor(&self) -> Option<&str> {
        self.tensor.as_deref()
    }

    /// The byte offset in the file, if known.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// Attaches the file (kept if one is already set).
    pub fn in_file(mut self, path: impl AsRef<Path>) -> Self {
        self.file.get_or_insert_with(|| path.as_ref().to_path_buf());
        self
    }

    /// Attaches the tensor name (kept if one is already set).
    pub fn in_tensor(mut self, name: impl Into<String>) -> Self {
        if self.tensor.is_none() {
            self.tensor = Some(name.into());
        }
        self
    }

    /// Moves a relative byte offset (inside an embedded stream) to an absolute one.
    pub(crate) fn rebase(mut self, base: u64) -> Self {
        self.offset = self.offset.map(|o| base.saturating_add(o));
        self
    }

    /// Attaches the byte offset (kept if one is already set).
    pub fn at(mut self, offset: u64) -> Self {
        self.offset.get_or_insert(offset);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(t) = &self.tensor {
            write!(f, "tensor `{t}`: ")?;
        }
        if let Some(o) = self.offset {
            write!(f, "at byte {o}: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

impl<T: Into<ErrorKind>> From<T> for Error {
    fn from(kind: T) -> Self {
        Error::new(kind.into())
    }
}

impl From<Error> for wharf_core::Error {
    fn from(e: Error) -> Self {
        wharf_core::Error::format(e)
    }
}

/// Result with the converters' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for a [`ErrorKind::Malformed`] error.
pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::Malformed {
        what,
        detail: detail.into(),
    })
}

/// Recovers a converters error from a core error, or wraps it.
pub fn from_core(e: wharf_core::Error) -> Error {
    match e {
        wharf_core::Error::Format(b) => match b.downcast::<Error>() {
            Ok(e) => *e,
            Err(b) => Error::new(ErrorKind::Unconvertible(b.to_string())),
        },
        wharf_core::Error::Layout(l) => Error::new(ErrorKind::Size(l)),
        wharf_core::Error::TensorNotFound { name } => {
            Error::new(ErrorKind::Index(format!("no tensor named `{name}`"))).in_tensor(name)
        }
        other => Error::new(ErrorKind::Unconvertible(other.to_string())),
    }
}
