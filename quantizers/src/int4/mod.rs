//! Grouped integer weights as compressed-tensors, GPTQ and AWQ store them.
//!
//! # API
//! - compressed-tensors `pack-quantized` (W4A16/W8A16, symmetric or asymmetric, round to
//!   nearest): [`CtParams`] ([`CtParams::w4a16`]), [`quantize_pack`] ->
//!   [`CtPacked`] `{ weight_packed, weight_scale, weight_zero_point, weight_shape }`, and
//!   [`dequantize_pack`]. See `ct.rs` for the exact arithmetic.
//! - GPTQ decoding: [`GptqParams`], [`GptqFormat`] (`V1` = `gptq`, `V2` = `gptq_v2`),
//!   [`dequantize_gptq`]`(params, qweight, qzeros, scales, g_idx) -> [out, in]`.
//! - AutoAWQ GEMM decoding: [`dequantize_awq`].
//!
//! Packed tensors are `i32` (their storage dtype); sub-word codes are LSB first. All functions
//! are pure and parallel over rows with rayon; results do not depend on the thread count.

mod awq;
mod ct;
mod gptq;
mod pack;

pub use awq::dequantize_awq;
pub use ct::{CtPacked, CtParams, dequantize_pack, quantize_pack};
pub use gptq::{GptqFormat, GptqParams, dequantize_gptq};

use wharf_core::DType;

use crate::{QuantError, Result};

/// A `Length` error about an `i32`/scale buffer unless `expected` (checked) equals `actual`.
fn check_len(what: &'static str, expected: Option<usize>, actual: usize) -> Result<()> {
    let expected = expected.ok_or_else(|| QuantError::Parameter(format!("{what} overflows")))?;
    if expected == actual {
        return Ok(());
    }
    Err(QuantError::Length {
        dtype: DType::I32,
        what,
        expected,
        actual,
    })
}
