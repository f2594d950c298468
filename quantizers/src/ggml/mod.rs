//! llama.cpp's GGML block types, byte-identical to libggml's quantizers.
//!
//! Quantized: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, MXFP4, TQ1_0, TQ2_0.
//! Decoded: those, plus IQ4_NL and IQ4_XS.
//!
//! Without an importance matrix every type reproduces what `ggml_quantize_chunk` writes, which
//! is the `quantize_row_*_ref` path (ggml/src/ggml-quants.c). With one, the weighted
//! `quantize_row_*_impl` path is used where libggml has one (Q8_0, MXFP4 and TQ*_0 ignore the
//! matrix, as libggml does). Rows are quantized in parallel; each row is computed alone and in a
//! fixed order, so the bytes do not depend on the thread count.
//!
//! F32, F16 (round to nearest even) and BF16 (gguf-py rounding, see [`wharf_core::cast`]) are
//! handled too, so callers can route every GGUF tensor type through [`quantize`].

mod imatrix_util;
mod iq4;
mod kquant_lanes;
mod kquant_util;
pub mod mix;
mod mxfp4;
mod q2_k;
mod q3_k;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
mod small_int;
mod tq;

use rayon::prelude::*;
use wharf_core::DType;
use wharf_core::cast;

use crate::{QuantError, Result};

/// Quantizes one row: `(row, importance matrix of the row's length, row bytes)`.
type QuantizeRow = fn(&[f32], Option<&[f32]>, &mut [u8]);
/// Decodes whole blocks: `(block bytes, values)`.
type DequantizeBlocks = fn(&[u8], &mut [f32]);

/// A block codec (some types are decode-only).
struct Codec {
    quantize: Option<QuantizeRow>,
    dequantize: DequantizeBlocks,
}

/// Blocks one parallel dequantization task decodes.
const BLOCKS_PER_TASK: usize = 256;
/// Elements one parallel dense-cast task converts.
const DENSE_PER_TASK: usize = 1 << 16;

fn codec(dtype: DType) -> Option<Codec> {
    let c = |q: QuantizeRow, dequantize: DequantizeBlocks| {
        Some(Codec {
            quantize: Some(q),
            dequantize,
        })
    };
    let decode_only = |dequantize: DequantizeBlocks| {
        Some(Codec {
            quantize: None,
            dequantize,
        })
    };
    match dtype {
        DType::Q4_0 => c(q4_0::quantize_row, q4_0::dequantize),
        DType::Q4_1 => c(q4_1::quantize_row, q4_1::dequantize),
        DType::Q5_0 => c(q5_0::quantize_row, q5_0::dequantize),
        DType::Q5_1 => c(q5_1::quantize_row, q5_1::dequantize),
        DType::Q8_0 => c(q8_0::quantize_row, q8_0::dequantize),
        DType::Q2K => c(q2_k::quantize_row, q2_k::dequantize),
        DType::Q3K => c(q3_k::quantize_row, q3_k::dequantize),
        DType::Q4K => c(q4_k::quantize_row, q4_k::dequantize),
        DType::Q5K => c(q5_k::quantize_row, q5_k::dequantize),
        DType::Q6K => c(q6_k::quantize_row, q6_k::dequantize),
        DType::MXFP4 => c(mxfp4::quantize_row, mxfp4::dequantize),
        DType::TQ1_0 => c(tq::quantize_row_tq1, tq::dequantize_tq1),
        DType::TQ2_0 => c(tq::quantize_row_tq2, tq::dequantize_tq2),
        DType::IQ4NL => decode_only(iq4::dequantize_nl),
        DType::IQ4XS => decode_only(iq4::dequantize_xs),
        _ => None,
    }
}

fn is_dense(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
}

/// Whether [`quantize`] writes `dtype`.
pub fn can_quantize(dtype: DType) -> bool {
    is_dense(dtype) || codec(dtype).is_some_and(|c| c.quantize.is_some())
}

/// Whether [`dequantize`] reads `dtype`.
pub fn can_dequantize(dtype: DType) -> bool {
    is_dense(dtype) || codec(dtype).is_some()
}

fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| QuantError::Parameter(format!("{n} bytes overflow usize")))
}

/// Checks the buffers of a quantization and returns the bytes of one row.
fn check_quantize(
    dtype: DType,
    src: usize,
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: usize,
) -> Result<usize> {
    if n_per_row == 0 || !src.is_multiple_of(n_per_row) {
        return Err(QuantError::Parameter(format!(
            "{dtype}: {src} elements are not whole rows of {n_per_row}"
        )));
    }
    let row_bytes = dtype
        .row_bytes(n_per_row as u64)
        .map_err(|e| QuantError::Parameter(e.to_string()))?;
    let row_bytes = to_usize(row_bytes)?;
    let expected = (src / n_per_row)
        .checked_mul(row_bytes)
        .ok_or_else(|| QuantError::Parameter("output size overflows usize".into()))?;
    if dst != expected {
        return Err(QuantError::Length {
            dtype,
            what: "dst bytes",
            expected,
            actual: dst,
        });
    }
    if let Some(im) = imatrix
        && im.len() != n_per_row
    {
        let (expected, actual) = (n_per_row, im.len());
        return Err(QuantError::Length {
            dtype,
            what: "imatrix",
            expected,
            actual,
        });
    }
    Ok(row_bytes)
}

fn check_finite(src: &[f32]) -> Result<()> {
    // Chunks, not elements: rayon's per-element `position_first` cost more than quantizing.
    const CHUNK: usize = 1 << 16;
    let bad = src
        .par_chunks(CHUNK)
        .enumerate()
        .find_map_first(|(i, c)| crate::reduce::chunk_non_finite(c).map(|p| i * CHUNK + p));
    match bad {
        Some(index) => Err(QuantError::NonFinite { index }),
        None => Ok(()),
    }
}

/// Quantizes `src` (whole rows of `n_per_row` values) into `dst`, which must be exactly the
/// size of `src.len()` elements of `dtype`.
///
/// `imatrix` (one weight per column, `n_per_row` values) selects libggml's importance-weighted
/// quantizers; without it the output matches `ggml_quantize_chunk(..., NULL)` byte for byte.
/// Block types reject NaN and infinities ([`QuantError::NonFinite`]); dense types cast them.
pub fn quantize(
    dtype: DType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<()> {
    let row_bytes = check_quantize(dtype, src.len(), n_per_row, imatrix, dst.len())?;
    if is_dense(dtype) {
        let width = row_bytes / n_per_row;
        return dst
            .par_chunks_mut(DENSE_PER_TASK * width)
            .zip(src.par_chunks(DENSE_PER_TASK))
            .try_for_each(|(y, x)| cast::encode_f32(dtype, x, y))
            .map_err(|_| QuantError::Unsupported(dtype));
    }
    let quantize_row = codec(dtype)
        .and_then(|c| c.quantize)
        .ok_or(QuantError::Unsupported(dtype))?;
    check_finite(src)?;
    if let Some(im) = imatrix {
        check_finite(im)
            .map_err(|_| QuantError::Parameter("imatrix holds NaN or infinity".into()))?;
    }
    dst.par_chunks_mut(row_bytes)
        .zip(src.par_chunks(n_per_row))
        .for_each(|(y, x)| quantize_row(x, imatrix, y));
    Ok(())
}

/// Decodes `src`, the bytes of `dst.len()` elements of `dtype`, into `dst`.
pub fn dequantize(dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    let expected = dtype
        .nbytes(dst.len() as u64)
        .map_err(|e| QuantError::Parameter(e.to_string()))?;
    let expected = to_usize(expected)?;
    if src.len() != expected {
        let actual = src.len();
        return Err(QuantError::Length {
            dtype,
            what: "src bytes",
            expected,
            actual,
        });
    }
    if is_dense(dtype) {
        let width = expected.checked_div(dst.len()).unwrap_or(1);
        return src
            .par_chunks(DENSE_PER_TASK * width)
            .zip(dst.par_chunks_mut(DENSE_PER_TASK))
            .try_for_each(|(x, y)| cast::decode_f32(dtype, x, y))
            .map_err(|_| QuantError::Unsupported(dtype));
    }
    let codec = codec(dtype).ok_or(QuantError::Unsupported(dtype))?;
    let layout = dtype.layout();
    let (elems, bytes) = (layout.elems as usize, layout.bytes as usize);
    src.par_chunks(BLOCKS_PER_TASK * bytes)
        .zip(dst.par_chunks_mut(BLOCKS_PER_TASK * elems))
        .for_each(|(x, y)| (codec.dequantize)(x, y));
    Ok(())
}

#[cfg(test)]
mod tests;
