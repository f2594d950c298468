//! wharf's bundle manifests.
//!
//! A bundle is a folder (or a deterministic zip of one) holding the files a runtime loads, a
//! golden `reference.json` and `manifest.json` (schema [`SCHEMA`]): the sha256 and size of every
//! file, the source's provenance, the recipe and the reference block.
//! This crate hashes while files stream out ([`hash`]), writes and strictly re-reads manifests
//! ([`manifest`]), zips bundles byte-reproducibly ([`zip`]) and re-hashes a bundle against its
//! manifest ([`verify`]). It knows nothing of tensors: the forward-pass half of `wharf verify`
//! lives with the targets.

#![warn(missing_docs)]

mod error;
pub mod hash;
pub mod manifest;
pub mod paths;
pub mod verify;
pub mod zip;

pub use error::{Error, Result};
pub use hash::{Digest, SharedHasher, StreamHasher, hash_file};
pub use manifest::{
    FileEntry, Manifest, Metrics, Recipe, Reference, SCHEMA, Source, Thresholds, Tool,
};
pub use verify::{FileCheck, FileStatus, HashReport, verify_dir, verify_zip};

/// The manifest's file name at the bundle root.
pub const MANIFEST_FILE: &str = "manifest.json";
