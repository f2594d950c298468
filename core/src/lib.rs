//! wharf's tensor model.
//!
//! Everything here is pure: no I/O, no file formats.
//! A checkpoint reader presents its tensors as a [`TensorSource`]; a writer accepts them through a
//! [`TensorSink`]; every tensor is described by a [`TensorMeta`] whose [`DType`] covers dense,
//! FP8, packed sub-byte and GGML block storages with checked sizes.
//! The [`model`] module holds the validated description of a supported architecture.

#![warn(missing_docs)]

pub mod cast;
mod dispatch;
mod dtype;
mod error;
pub mod model;
mod shape;
mod source;
mod tensor;

pub use dtype::{BlockLayout, DType, DTypeFamily, UnknownDType};
pub use error::{Error, LayoutError, Result};
pub use shape::Shape;
pub use source::{Access, Stored, TensorSink, TensorSource};
pub use tensor::{TensorMeta, TensorView};
