//! Row-range dequantization: only the stored rows (and scale rows) covering the asked range are
//! decoded, by the quantizers' own dequantizers, so results equal theirs bit for bit.

use std::ops::Range;

use wharf_core::TensorSource;
use wharf_core::cast::decode_f32;
use wharf_quantizers::fp8::{self, Fp8Format};
use wharf_quantizers::int4::{self, CtParams, GptqParams};
use wharf_quantizers::mlx::{self, MlxParams};

use super::detect::bad;
use super::{CtFp8Strategy, LogicalTensor, Storage};
use crate::error::{Error, ErrorKind, Result, from_core};

fn quant_err(e: wharf_quantizers::QuantError) -> Error {
    Error::new(ErrorKind::Unconvertible(e.to_string()))
}

/// Stored bytes of `name`, or an error naming it.
fn bytes<'s>(src: &'s dyn TensorSource, name: &str) -> Result<std::borrow::Cow<'s, [u8]>> {
    src.bytes(name).map_err(|e| from_core(e).in_tensor(name))
}

/// Elements `range` of a dense float/integer tensor, as f32.
fn floats(src: &dyn TensorSource, name: &str, range: Range<usize>) -> Result<Vec<f32>> {
    let meta = src.require(name).map_err(from_core)?;
    let size = meta.dtype.nbytes(1)? as usize;
    let raw = bytes(src, name)?;
    let part = raw
        .get(range.start * size..range.end * size)
        .ok_or_else(|| bad(name, format!("elements {range:?} out of range")))?;
    let mut out = vec![0f32; range.len()];
    decode_f32(meta.dtype, part, &mut out).map_err(|e| bad(name, e.to_string()))?;
    Ok(out)
}

/// Elements `range` of an `i32` tensor.
fn i32s(src: &dyn TensorSource, name: &str, range: Range<usize>) -> Result<Vec<i32>> {
    let raw = bytes(src, name)?;
    let part = raw
        .get(range.start * 4..range.end * 4)
        .ok_or_else(|| bad(name, format!("elements {range:?} out of range")))?;
    Ok(part
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Byte range `range` (in elements of 1 byte) of an FP8 tensor.
fn codes(src: &dyn TensorSource, name: &str, range: Range<usize>) -> Result<Vec<u8>> {
    let raw = bytes(src, name)?;
    raw.get(range.clone())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| bad(name, format!("bytes {range:?} out of range")))
}

/// `rows` widened to whole multiples of `align` (clamped to `total`).
fn aligned(rows: &Range<usize>, align: usize, total: usize) -> Range<usize> {
    let start = rows.start / align * align;
    let end = rows.end.div_ceil(align).saturating_mul(align).min(total);
    start..end
}

/// Keeps rows `want` of the row-major block `got` (`got` covers `want`).
fn slice_rows(values: Vec<f32>, got: &Range<usize>, want: &Range<usize>, cols: usize) -> Vec<f32> {
    if got == want {
        return values;
    }
    values[(want.start - got.start) * cols..(want.end - got.start) * cols].to_vec()
}

/// Rows `rows` of the logical tensor `t` as f32.
pub(super) fn read_rows(
    src: &dyn TensorSource,
    t: &LogicalTensor,
    rows: Range<usize>,
) -> Result<Vec<f32>> {
    let (total, cols) = t.rows_cols();
    match &t.storage {
        Storage::Dense => floats(src, &t.meta.name, rows.start * cols..rows.end * cols),
        Storage::DeepseekFp8 {
            weight,
            scale_inv,
            block,
            format,
        } => fp8_block(
            src,
            (weight, scale_inv),
            *format,
            *block,
            (total, cols),
            rows,
        ),
        Storage::CtFp8 {
            weight,
            scale,
            strategy,
            format,
        } => ct_fp8(
            src,
            (weight, scale),
            *format,
            *strategy,
            (total, cols),
            rows,
        ),
        Storage::CtPacked {
            packed,
            scale,
            zero_point,
            params,
        } => ct_packed(
            src,
            (packed, scale, zero_point.as_deref()),
            *params,
            (total, cols),
            rows,
        ),
        Storage::Mlx {
            weight,
            scales,
            biases,
            params,
        } => mlx_rows(src, (weight, scales, biases), *params, cols, rows),
        Storage::Gptq { .. } => gptq(src, t, (total, cols), rows),
    }
}

/// DeepSeek / compressed-tensors block FP8: decode whole block strips, then slice.
fn fp8_block(
    src: &dyn TensorSource,
    (weight, scale): (&str, &str),
    format: Fp8Format,
    block: (usize, usize),
    (total, cols): (usize, usize),
    rows: Range<usize>,
) -> Result<Vec<f32>> {
    let got = aligned(&rows, block.0, total);
    let grid_cols = cols.div_ceil(block.1);
    let q = codes(src, weight, got.start * cols..got.end * cols)?;
    let s_rows = got.start / block.0..got.end.div_ceil(block.0);
    let s = floats(src, scale, s_rows.start * grid_cols..s_rows.end * grid_cols)?;
    let out = fp8::dequantize_blocks(format, &q, &s, got.len(), cols, block).map_err(quant_err)?;
    Ok(slice_rows(out, &got, &rows, cols))
}

fn ct_fp8(
    src: &dyn TensorSource,
    (weight, scale): (&str, &str),
    format: Fp8Format,
    strategy: CtFp8Strategy,
    (total, cols): (usize, usize),
    rows: Range<usize>,
) -> Result<Vec<f32>> {
    match strategy {
        CtFp8Strategy::Block(r, c) => {
            fp8_block(src, (weight, scale), format, (r, c), (total, cols), rows)
        }
        CtFp8Strategy::Channel => {
            let q = codes(src, weight, rows.start * cols..rows.end * cols)?;
            let s = floats(src, scale, rows.clone())?;
            fp8::dequantize_per_channel(format, &q, &s, rows.len(), cols).map_err(quant_err)
        }
        CtFp8Strategy::Tensor => {
            let q = codes(src, weight, rows.start * cols..rows.end * cols)?;
            let s = floats(src, scale, 0..1)?;
            Ok(fp8::dequantize_per_tensor(format, &q, s[0]))
        }
    }
}

/// compressed-tensors pack-quantized; zero points are packed along rows, so strips of whole
/// words of rows are decoded.
fn ct_packed(
    src: &dyn TensorSource,
    (packed, scale, zp): (&str, &str, Option<&str>),
    params: CtParams,
    (total, cols): (usize, usize),
    rows: Range<usize>,
) -> Result<Vec<f32>> {
    let pf = (32 / params.bits) as usize;
    let got = aligned(&rows, pf, total);
    let (words, groups) = (cols.div_ceil(pf), cols / params.group);
    let w = i32s(src, packed, got.start * words..got.end * words)?;
    let s = floats(src, scale, got.start * groups..got.end * groups)?;
    let z = match zp {
        Some(name) => Some(i32s(
            src,
            name,
            got.start / pf * groups..got.end.div_ceil(pf) * groups,
        )?),
        None => None,
    };
    let out = int4::dequantize_pack(&w, &s, z.as_deref(), [got.len(), cols], params)
        .map_err(quant_err)?;
    Ok(slice_rows(out, &got, &rows, cols))
}

/// MLX: each row is whole groups, so a row range is a plain slice of all three tensors.
fn mlx_rows(
    src: &dyn TensorSource,
    (weight, scales, biases): (&str, &str, &str),
    params: MlxParams,
    cols: usize,
    rows: Range<usize>,
) -> Result<Vec<f32>> {
    let groups = cols / params.group();
    let words = groups * params.words_per_group();
    let w: Vec<u32> = i32s(src, weight, rows.start * words..rows.end * words)?
        .into_iter()
        .map(|x| x as u32)
        .collect();
    let g = rows.start * groups..rows.end * groups;
    let s = floats(src, scales, g.clone())?;
    let b = floats(src, biases, g)?;
    let dtype = src.require(scales).map_err(from_core)?.dtype;
    mlx::dequantize(&w, &s, &b, params, dtype).map_err(quant_err)
}

/// GPTQ stores output rows as columns: decode the tensor, keep the rows.
fn gptq(
    src: &dyn TensorSource,
    t: &LogicalTensor,
    (n, k): (usize, usize),
    rows: Range<usize>,
) -> Result<Vec<f32>> {
    let Storage::Gptq {
        qweight,
        qzeros,
        scales,
        g_idx,
        bits,
        group,
        format,
    } = &t.storage
    else {
        return Err(bad(&t.meta.name, "not GPTQ"));
    };
    let p = GptqParams {
        bits: *bits,
        group: *group,
        format: *format,
        in_features: k,
        out_features: n,
    };
    let all = |name: &str| -> Result<usize> {
        Ok(src.require(name).map_err(from_core)?.numel()? as usize)
    };
    let qw = i32s(src, qweight, 0..all(qweight)?)?;
    let qz = i32s(src, qzeros, 0..all(qzeros)?)?;
    let sc = floats(src, scales, 0..all(scales)?)?;
    let gi = match g_idx {
        Some(g) => Some(i32s(src, g, 0..all(g)?)?),
        None => None,
    };
    let out = int4::dequantize_gptq(p, &qw, &qz, &sc, gi.as_deref()).map_err(quant_err)?;
    Ok(slice_rows(out, &(0..n), &rows, k))
}
