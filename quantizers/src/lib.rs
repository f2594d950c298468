//! wharf's quantization codecs.
//!
//! Pure functions over slices: no I/O, no file formats, no global state. Every codec is
//! deterministic: the same input gives the same bytes on any host and at any thread count
//! (rows are independent, reductions run in a fixed order, and nothing is FMA-contracted).
//!
//! - [`ggml`]: llama.cpp's block types, byte-identical to libggml's reference quantizers.
//! - [`fp8`]: E4M3FN / E5M2 with per-tensor, per-channel and 128x128 block scales.
//! - [`int4`]: grouped INT4 as compressed-tensors and GPTQ store it.
//! - [`mlx`]: MLX affine quantization, bit for bit with MLX's CPU kernel.
//!
//! The FP8 and MLX quantizers also read [`Elements`]: BF16 bytes quantized in place, a short run
//! at a time, without a whole-tensor f32 copy.

#![warn(missing_docs)]

mod elements;
mod error;
pub mod fp8;
pub mod ggml;
pub mod int4;
pub mod mlx;
mod reduce;

pub use elements::Elements;
pub use error::{QuantError, Result};
pub use reduce::first_non_finite;
