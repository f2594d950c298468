//! 2-D block scales, DeepSeek-V3's `weight_block_size: [128, 128]` and compressed-tensors'
//! `strategy: "block"`.
//!
//! For each block `scale = amax(|block|) / fmax` in the compute dtype (edge blocks are partial:
//! the missing elements count as zero), `q = encode(w / scale)`, and dequantization is
//! `decode(q) * scale`. Scales are row-major `[ceil(rows/bh), ceil(cols/bw)]`; DeepSeek calls
//! them `weight_scale_inv` although they multiply.

use rayon::prelude::*;

use wharf_core::DType;

use super::options::{check_len, check_matrix};
use super::{Fp8Format, Fp8Options, kernel};
use crate::{Elements, QuantError, Result};

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
    let (grid_rows, grid_cols) = block_grid(rows, cols, block);
    let mut out = vec![0u8; src.len()];
    let mut scales = vec![0f32; grid_rows * grid_cols];
    let src = Elements::F32(src);
    quantize_blocks_into(opts, src, rows, cols, block, &mut out, &mut scales)?;
    Ok((out, scales))
}

/// [`quantize_blocks`] of any [`Elements`] into caller buffers: `codes` holds `rows * cols`
/// bytes, `scales` the [`block_grid`] (row-major).
///
/// Errors: as [`quantize_blocks`], and `Length` for a buffer of the wrong size.
pub fn quantize_blocks_into(
    opts: Fp8Options,
    src: Elements<'_>,
    rows: usize,
    cols: usize,
    block: (usize, usize),
    codes: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    opts.validate()?;
    let strip = check_shape(opts.format, src.len(), rows, cols, block)?;
    let (grid_rows, grid_cols) = block_grid(rows, cols, block);
    check_len(opts.format.dtype(), "codes", src.len(), codes.len())?;
    check_len(DType::F32, "scales", grid_rows * grid_cols, scales.len())?;
    let finite = codes
        .par_chunks_mut(strip)
        .zip(scales.par_chunks_mut(grid_cols))
        .enumerate()
        .map(|(i, (d, sc))| quantize_strip(&opts, &src, i * strip, d, sc, cols, block.1))
        .reduce(|| true, |a, b| a && b);
    if !finite {
        src.check_finite()?;
    }
    Ok(())
}

wharf_core::avx2_dispatch! {
    /// One strip of `block.0` rows (fewer at the bottom edge) starting at element `start`;
    /// false if it holds a NaN or infinity (its codes are then meaningless).
    fn quantize_strip(
        opts: &Fp8Options,
        src: &Elements<'_>,
        start: usize,
        dst: &mut [u8],
        scales: &mut [f32],
        cols: usize,
        width: usize
    ) -> bool = quantize_strip_body;
}

/// [`quantize_strip`] as one body for both builds.
///
/// A strip is contiguous, and both passes (the block maxima, then the codes) walk it row by
/// row: a block column at a time would touch a new page every row, out of the prefetcher's
/// reach.
#[inline(always)]
fn quantize_strip_body(
    opts: &Fp8Options,
    src: &Elements<'_>,
    start: usize,
    dst: &mut [u8],
    scales: &mut [f32],
    cols: usize,
    width: usize,
) -> bool {
    let span = |j: usize| (j * width, cols.min(j * width + width) - j * width);
    let mut amax = vec![0u32; scales.len()];
    for r in 0..dst.len() / cols {
        for (j, m) in amax.iter_mut().enumerate() {
            let (c0, len) = span(j);
            *m = (*m).max(kernel::amax_bits(src, start + r * cols + c0, len));
        }
    }
    if !amax.iter().all(|&a| kernel::finite(a)) {
        return false;
    }
    for (scale, &a) in scales.iter_mut().zip(&amax) {
        *scale = opts.scale(f32::from_bits(a));
    }
    for (r, drow) in dst.chunks_mut(cols).enumerate() {
        for (j, &scale) in scales.iter().enumerate() {
            let (c0, len) = span(j);
            let at = start + r * cols + c0;
            kernel::quantize_range(opts, src, at, scale, &mut drow[c0..c0 + len]);
        }
    }
    true
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
    use crate::fp8::ZeroScale;

    /// The dispatched strip (AVX2 where the CPU has it) against the baseline build of its body:
    /// partial blocks, a zero block, subnormal and saturating values, both formats, F32 and
    /// BF16 arithmetic, F32 and BF16 sources, and a strip holding an infinity.
    #[test]
    fn dispatched_strip_equals_the_baseline_build() {
        let (rows, cols) = (40, 300);
        let mut v: Vec<f32> = (0..rows * cols as u32)
            .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761) & 0xBFFF_FFFF) * 1e-30)
            .collect();
        v[..cols].fill(0.0);
        v[cols + 5] = -1e6;
        v[2 * cols + 7] = 1e-41;
        let bf16: Vec<u8> = v
            .iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        let mut bad = v.clone();
        bad[cols * 3 + 1] = f32::NEG_INFINITY;
        for format in [Fp8Format::E4M3, Fp8Format::E5M2] {
            for compute in [DType::F32, DType::BF16] {
                let opts = Fp8Options {
                    format,
                    zero_scale: ZeroScale::One,
                    compute,
                };
                for src in [
                    Elements::F32(&v),
                    Elements::Bf16(&bf16),
                    Elements::F32(&bad),
                ] {
                    let run = |dispatched: bool| {
                        let (mut d, mut s) = (vec![0u8; 16 * cols], vec![0f32; 3]);
                        let ok = if dispatched {
                            quantize_strip(&opts, &src, cols, &mut d, &mut s, cols, 128)
                        } else {
                            quantize_strip_body(&opts, &src, cols, &mut d, &mut s, cols, 128)
                        };
                        (ok, d, s.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                    };
                    assert_eq!(run(true), run(false), "{format:?} {compute:?}");
                }
            }
        }
    }

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
    fn bf16_input_gives_the_bytes_of_its_f32_values() {
        let (rows, cols) = (300, 200);
        let (bytes, f32s) = crate::elements::bf16_test_values(rows * cols);
        for block in [(128, 128), (32, 48)] {
            let (want_q, want_s) =
                quantize_blocks(Fp8Options::DEEPSEEK, &f32s, rows, cols, block).unwrap();
            let (gr, gc) = block_grid(rows, cols, block);
            let (mut q, mut s) = (vec![0u8; rows * cols], vec![0f32; gr * gc]);
            let src = Elements::Bf16(&bytes);
            quantize_blocks_into(Fp8Options::DEEPSEEK, src, rows, cols, block, &mut q, &mut s)
                .unwrap();
            assert_eq!((q, s), (want_q, want_s), "{block:?}");
        }
        let mut bad = bytes.clone();
        bad[2 * 777..2 * 778].copy_from_slice(&0xFF80u16.to_le_bytes());
        let (mut q, mut s) = (vec![0u8; rows * cols], vec![0f32; 6]);
        let err = quantize_blocks_into(
            Fp8Options::DEEPSEEK,
            Elements::Bf16(&bad),
            rows,
            cols,
            (128, 128),
            &mut q,
            &mut s,
        )
        .unwrap_err();
        assert_eq!(err, QuantError::NonFinite { index: 777 });
    }

    #[test]
    fn empty_block_is_a_parameter_error() {
        let err = quantize_blocks(Fp8Options::DEEPSEEK, &[0.0; 4], 2, 2, (0, 2)).unwrap_err();
        assert!(matches!(err, QuantError::Parameter(_)));
    }
}
