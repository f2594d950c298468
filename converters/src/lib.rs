//! wharf's checkpoint readers and writers.
//!
//! Every reader validates before it trusts: sizes are checked against the file, names against
//! duplicates, offsets against overlap and holes, paths against escapes (RELIABILITY.md). Every
//! reader presents a [`wharf_core::TensorSource`]; every writer is a [`wharf_core::TensorSink`]
//! that writes beside its target and renames into place only when complete.

#![warn(missing_docs)]

pub mod atomic;
mod direct;
mod error;
pub mod gguf;
pub mod hf;
pub mod imatrix;
pub mod json;
pub mod leftovers;
pub mod limits;
pub mod mmap;
pub mod onnx;
mod open;
pub mod pipeline;
pub mod roundtrip;
pub mod safetensors;
pub mod torch;

pub use error::{Error, ErrorKind, Result, from_core};
pub use open::{AnySource, Format, HfInput, detect};
