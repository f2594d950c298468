//! wharf's exact CPU reference forward pass.
//!
//! A small, readable f32 decoder for Llama, Qwen2, Mistral and DeepSeek V2/V3 over weights in
//! any storage wharf reads, dequantized row block by row block from memory-mapped files
//! ([`weights`]). It exists so a bundle can be checked against its source on the device itself:
//! `verify` and `wharf compare` run it and compare logits ([`metrics`]).
//!
//! ```no_run
//! # fn main() -> Result<(), wharf_reference::Error> {
//! let model = wharf_reference::Model::open(std::path::Path::new("models/llama"))?;
//! let logits = model.logits(&[0, 17, 345])?;
//! let next = model.generate(&[0, 17, 345], 8)?;
//! # let _ = (logits, next); Ok(()) }
//! ```

#![warn(missing_docs)]

mod attention;
mod error;
pub mod kernels;
pub mod metrics;
mod model;
pub mod moe;
pub mod npy;
pub mod qdot;
pub mod rope;
mod spm;
mod tokenizer;
pub mod weights;

pub use error::{Error, Result};
pub use model::{Cache, Logits, Model};
pub use tokenizer::Tokenizer;
