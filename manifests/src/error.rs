//! The manifests' error.

use std::io;
use std::path::PathBuf;

/// What went wrong reading, writing or checking a bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// `manifest.json` is missing, malformed or breaks a rule of the schema.
    #[error("{path}: manifest: {detail}")]
    Manifest {
        /// The manifest (or bundle) path.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// A file name in a manifest or zip that could escape the bundle or is not portable.
    #[error("unsafe bundle path `{name}`: {why}")]
    UnsafePath {
        /// The name as written.
        name: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// A zip container that cannot be read as a bundle.
    #[error("{path}: zip: {detail}")]
    Zip {
        /// The zip file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn manifest(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::Manifest {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// The manifests' result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
