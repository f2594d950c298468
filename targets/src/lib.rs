//! wharf's targets: profiles as data ([`profile`]), preflight checks before anything is
//! written ([`preflight`], [`tp`]), and the writers that turn a source into a target's files
//! ([`gguf`]).

#![warn(missing_docs)]

pub mod bundle;
pub mod export;
pub mod folder;
pub mod gguf;
pub mod golden;
pub mod hf_from_gguf;
pub mod preflight;
pub mod profile;
mod runmd;
pub mod tp;
pub mod verify;

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
    /// The reference forward pass failed.
    #[error("reference forward pass: {0}")]
    Reference(String),
    /// A golden file that cannot be read.
    #[error("{0}")]
    Golden(String),
    /// The bundle is beyond its target's thresholds (nothing was written without `--force`).
    #[error(
        "quality gate: decisive top-1 agreement {top1:.3} (min {min_top1}), mean KL {mean_kl:.4} nats (max {max_mean_kl}), max KL {max_kl:.4} (max {limit_max_kl})"
    )]
    Gate {
        /// Measured top-1 agreement over decisive positions.
        top1: f64,
        /// Measured mean KL.
        mean_kl: f64,
        /// Measured largest KL.
        max_kl: f64,
        /// Threshold.
        min_top1: f64,
        /// Threshold.
        max_mean_kl: f64,
        /// Threshold.
        limit_max_kl: f64,
    },
    /// Preflight refused the export before anything was written.
    #[error("preflight refused the export: {}", .0.join("; "))]
    Preflight(Vec<String>),
}

/// Where a write stands, reported after each output tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Output tensors written so far.
    pub tensors_done: usize,
    /// Output tensors in all.
    pub tensors: usize,
    /// Output bytes of the written tensors.
    pub bytes_done: u64,
    /// Output bytes of all tensors.
    pub bytes: u64,
}

/// A progress callback. Front ends turn it into a bar; libraries never print.
pub type Progress<'a> = &'a mut dyn FnMut(Step);

/// The pipeline's per-tensor callback (the index of the finished tensor) as [`Step`]s over
/// `metas`, the tensors in write order.
pub(crate) fn steps<'p>(
    metas: &[wharf_core::TensorMeta],
    progress: Progress<'p>,
) -> impl FnMut(usize) + 'p {
    let sizes: Vec<u64> = metas.iter().map(|m| m.nbytes().unwrap_or(0)).collect();
    let bytes = sizes.iter().sum();
    let mut bytes_done = 0u64;
    move |i| {
        bytes_done += sizes.get(i).copied().unwrap_or(0);
        progress(Step {
            tensors_done: i + 1,
            tensors: sizes.len(),
            bytes_done,
            bytes,
        });
    }
}

/// The targets' result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
