//! 2-D block scales, DeepSeek-V3's `weight_block_size: [128, 128]` and compressed-tensors'
//! `strategy: "block"`.
//!
//! For each block `scale = amax(|block|) / fmax` in the compute dtype (edge blocks are partial:
//! the missing elements count as zero), `q = encode(w / scale)`, and dequantization is
//! `decode(q) * scale`. Scales are row-major `[ceil(rows/bh), ceil(cols/bw)]`; DeepSeek calls
//! them `weight_scale_inv` although they multiply.

use rayon::prelude::*;

use super::options::{amax, check_finite, check_len, check_matrix};
use super::{Fp8Format, Fp8Options};
use crate::{QuantError, Result};

/// Number of block rows and block columns covering a `rows x cols` matrix.
pub fn block_grid(rows: usize, cols: usize, block: (usize, usize)) -> (usize, usize) {
    (rows.div_ceil(block.0.max(1)), cols.div_ceil(block.1.max(1)))
}

/// Quantizes a row-major `rows x cols` matrix with one scale per `block.0 x block.1` block.
///
/// Returns the codes (`rows * cols`) and the scales (row-major, see [`block_grid`]).
/// Errors: `Parameter` for an empty block or `cols == 0`, `Length`, `NonFinite`, `Unsupported`.
pub fn quantize_blocks(
    opts: Fp8Options,
    src: &[f32],
    rows: usize,
    cols: usize,
    block: (usize, usize),
) -> Result<(Vec<u8>, Vec<f32>)> {
    opts.validate()?;
    let strip = check_shape(opts.format, src.len(), rows, cols, block)?;
    check_finite(src)?;
    let (grid_rows, grid_cols) = block_grid(rows, cols, block);
    let mut out = vec![0u8; src.len()];
    let mut scales = vec![0f32; grid_rows * grid_cols];
    out.par_chunks_mut(strip)
        .zip(scales.par_chunks_mut(grid_cols))
        .zip(src.par_chunks(strip))
        .for_each(|((d, sc), s)| quantize_strip(&opts, s, d, sc, cols, block.1));
    Ok((out, scales))
}

/// One strip of `block.0` rows (fewer at the bottom edge).
fn quantize_strip(
    opts: &Fp8Options,
    src: &[f32],
    dst: &mut [u8],
    scales: &mut [f32],
    cols: usize,
    width: usize,
) {
    for (j, scale) in scales.iter_mut().enumerate() {
        let c0 = j * width;
        let c1 = cols.min(c0 + width);
        let a = src
            .chunks(cols)
            .map(|row| amax(&row[c0..c1]))
            .fold(0.0, f32::max);
        *scale = opts.scale(a);
        for (srow, drow) in src.chunks(cols).zip(dst.chunks_mut(cols)) {
            for (d, &w) in drow[c0..c1].iter_mut().zip(&srow[c0..c1]) {
                *d = opts.quantize(w, *scale);
            }
        }
    }
}

/// `decode(q[r, c]) * scales[r / block.0, c / block.1]`.
pub fn dequantize_blocks(
    format: Fp8Format,
    q: &[u8],
    scales: &[f32],
    rows: usize,
    cols: usize,
    block: (usize, usize),
) -> Result<Vec<f32>> {
    let strip = check_shape(format, q.len(), rows, cols, block)?;
    let (grid_rows, grid_cols) = block_grid(rows, cols, block);
    check_len(
        format.dtype(),
        "scales",
        grid_rows * grid_cols,
        scales.len(),
    )?;
    let table = format.table();
    let mut out = vec![0f32; q.len()];
    out.par_chunks_mut(strip)
        .zip(scales.par_chunks(grid_cols))
        .zip(q.par_chunks(strip))
        .for_each(|((d, sc), s)| {
            for (drow, srow) in d.chunks_mut(cols).zip(s.chunks(cols)) {
                for (c, (d, &b)) in drow.iter_mut().zip(srow).enumerate() {
                    *d = table[usize::from(b)] * sc[c / block.1];
                }
            }
        });
    Ok(out)
}

/// Validates the shape and returns the strip length `block.0 * cols`.
fn check_shape(
    format: Fp8Format,
    len: usize,
    rows: usize,
    cols: usize,
    block: (usize, usize),
) -> Result<usize> {
    if block.0 == 0 || block.1 == 0 || cols == 0 {
        return Err(QuantError::Parameter(format!(
            "block FP8 needs a non-empty block and cols > 0, got {block:?} and {cols}"
        )));
    }
    check_matrix(format.dtype(), "weight", len, rows, cols)?;
    block
        .0
        .checked_mul(cols)
        .ok_or_else(|| QuantError::Parameter("block strip overflows".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_edge_blocks_and_zero_block() {
        // 3x3 matrix, 2x2 blocks: scales [[a, b], [c, d]].
        let src = [1.0f32, 2.0, 8.0, -4.0, 0.5, 0.0, 0.0, 0.0, 0.0];
        let (q, s) = quantize_blocks(Fp8Options::DEEPSEEK, &src, 3, 3, (2, 2)).unwrap();
        assert_eq!(s, vec![4.0 / 448.0, 8.0 / 448.0, 1.0, 1.0]);
        assert_eq!(q[3], 0xFE);
        assert_eq!(q[2], 0x7E);
        assert!(q[6..].iter().all(|&b| b == 0));
        let back = dequantize_blocks(Fp8Format::E4M3, &q, &s, 3, 3, (2, 2)).unwrap();
        assert!((back[3] + 4.0).abs() < 1e-6);
        assert!((back[2] - 8.0).abs() < 1e-6);
    }

    #[test]
    fn empty_block_is_a_parameter_error() {
        let err = quantize_blocks(Fp8Options::DEEPSEEK, &[0.0; 4], 2, 2, (0, 2)).unwrap_err();
        assert!(matches!(err, QuantError::Parameter(_)));
    }
}
