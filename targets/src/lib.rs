//! wharf's targets: profiles as data ([`profile`]), preflight checks before anything is
//! written ([`preflight`], [`tp`]), and the writers that turn a source into a target's files
//! ([`gguf`]).

#![warn(missing_docs)]

pub mod gguf;
pub mod preflight;
pub mod profile;
pub mod tp;

pub use profile::{Container, Gate, TARGETS, TargetProfile, by_name};

/// What went wrong planning or writing for a target.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the source or writing files failed.
    #[error(transparent)]
    Convert(#[from] wharf_converters::Error),
    /// Writing or checking the manifest failed.
    #[error(transparent)]
    Manifest(#[from] wharf_manifests::Error),
    /// The scheme does not fit the target.
    #[error("target {target} does not take scheme `{scheme}`; it takes {allowed}")]
    Scheme {
        /// The target.
        target: &'static str,
        /// The scheme asked for.
        scheme: String,
        /// The schemes it takes.
        allowed: String,
    },
    /// The source cannot be written this way.
    #[error("{0}")]
    Unsupported(String),
    /// Preflight refused the export before anything was written.
    #[error("preflight refused the export: {}", .0.join("; "))]
    Preflight(Vec<String>),
}

/// The targets' result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
