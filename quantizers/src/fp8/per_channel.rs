//! One scale per output row: `scale[r] = amax(|W[r, :]|) / fmax`
//! (compressed-tensors `strategy: "channel"`, `weight_scale` of shape `[rows, 1]`).

use rayon::prelude::*;

use wharf_core::DType;

use super::options::{check_len, check_matrix};
use super::{Fp8Format, Fp8Options, kernel};
use crate::{Elements, QuantError, Result};

/// Quantizes a row-major `rows x cols` matrix; returns the codes and `rows` scales.
///
/// Errors: `Length` if `src.len() != rows * cols`, `Parameter` if `cols == 0`, `NonFinite`,
/// `Unsupported` compute dtype.
pub fn quantize_per_channel(
    opts: Fp8Options,
    src: &[f32],
    rows: usize,
    cols: usize,
) -> Result<(Vec<u8>, Vec<f32>)> {
    let mut out = vec![0u8; src.len()];
    let mut scales = vec![0f32; rows];
    quantize_per_channel_into(opts, Elements::F32(src), rows, cols, &mut out, &mut scales)?;
    Ok((out, scales))
}

/// [`quantize_per_channel`] of any [`Elements`] into caller buffers (`rows * cols` codes,
/// `rows` scales).
pub fn quantize_per_channel_into(
    opts: Fp8Options,
    src: Elements<'_>,
    rows: usize,
    cols: usize,
    codes: &mut [u8],
    scales: &mut [f32],
) -> Result<()> {
    opts.validate()?;
    check_shape(opts.format, src.len(), rows, cols)?;
    check_len(opts.format.dtype(), "codes", src.len(), codes.len())?;
    check_len(DType::F32, "scales", rows, scales.len())?;
    let finite = codes
        .par_chunks_mut(cols)
        .zip(scales.par_iter_mut())
        .enumerate()
        .map(|(r, (d, scale))| {
            let a = kernel::amax_bits(&src, r * cols, cols);
            *scale = opts.scale(f32::from_bits(a));
            kernel::quantize_range(&opts, &src, r * cols, *scale, d);
            kernel::finite(a)
        })
        .reduce(|| true, |a, b| a && b);
    if !finite {
        src.check_finite()?;
    }
    Ok(())
}

/// `decode(q[r, c]) * scales[r]` for a row-major `rows x cols` matrix of codes.
pub fn dequantize_per_channel(
    format: Fp8Format,
    q: &[u8],
    scales: &[f32],
    rows: usize,
    cols: usize,
) -> Result<Vec<f32>> {
    check_shape(format, q.len(), rows, cols)?;
    check_len(format.dtype(), "scales", rows, scales.len())?;
    let table = format.table();
    let mut out = vec![0f32; q.len()];
    out.par_chunks_mut(cols)
        .zip(scales.par_iter())
        .zip(q.par_chunks(cols))
        .for_each(|((d, &scale), s)| {
            for (d, &b) in d.iter_mut().zip(s) {
                *d = table[usize::from(b)] * scale;
            }
        });
    Ok(out)
}

/// `len == rows * cols` and `cols > 0`.
fn check_shape(format: Fp8Format, len: usize, rows: usize, cols: usize) -> Result<()> {
    if cols == 0 {
        return Err(QuantError::Parameter(
            "per-channel FP8 needs cols > 0".into(),
        ));
    }
    check_matrix(format.dtype(), "weight", len, rows, cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_scale_per_row() {
        let src = [1.0f32, -4.0, 0.0, 0.0, 3.0, 6.0];
        let opts = Fp8Options::compressed_tensors(Fp8Format::E4M3, wharf_core::DType::F32);
        let (q, s) = quantize_per_channel(opts, &src, 3, 2).unwrap();
        assert_eq!(s, vec![4.0 / 448.0, f32::EPSILON, 6.0 / 448.0]);
        assert_eq!(q[1], 0xFE);
        assert_eq!(q[5], 0x7E);
        let back = dequantize_per_channel(Fp8Format::E4M3, &q, &s, 3, 2).unwrap();
        assert!((back[1] + 4.0).abs() < 1e-6);
        assert!((back[5] - 6.0).abs() < 1e-6);
    }

    #[test]
    fn length_mismatch() {
        let err = quantize_per_channel(Fp8Options::DEEPSEEK, &[0.0; 5], 2, 3).unwrap_err();
        assert!(matches!(
            err,
            QuantError::Length {
                expected: 6,
                actual: 5,
                ..
            }
        ));
    }
}
