//! One scale for a whole tensor: `scale = amax / fmax`, `q = encode(w / scale)`
//! (compressed-tensors `strategy: "tensor"`, a `(1,)` or 0-dim `weight_scale`).

use rayon::prelude::*;

use super::options::check_len;
use super::{Fp8Format, Fp8Options, kernel};
use crate::{Elements, Result};

/// Elements per parallel work item.
const CHUNK: usize = 1 << 14;

/// Quantizes `src` with one scale; returns the codes and the scale.
///
/// Errors: [`crate::QuantError::NonFinite`] on NaN or infinity,
/// [`crate::QuantError::Unsupported`] for a compute dtype other than F32/BF16/F16.
pub fn quantize_per_tensor(opts: Fp8Options, src: &[f32]) -> Result<(Vec<u8>, f32)> {
    let mut out = vec![0u8; src.len()];
    let scale = quantize_per_tensor_into(opts, Elements::F32(src), &mut out)?;
    Ok((out, scale))
}

/// [`quantize_per_tensor`] of any [`Elements`] into `codes` (one per element); returns the
/// scale.
pub fn quantize_per_tensor_into(
    opts: Fp8Options,
    src: Elements<'_>,
    codes: &mut [u8],
) -> Result<f32> {
    opts.validate()?;
    check_len(opts.format.dtype(), "codes", src.len(), codes.len())?;
    let n = src.len();
    let a = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| kernel::amax_bits(&src, c * CHUNK, CHUNK.min(n - c * CHUNK)))
        .reduce(|| 0, u32::max);
    if !kernel::finite(a) {
        src.check_finite()?;
    }
    let scale = opts.scale(f32::from_bits(a));
    codes
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, d)| kernel::quantize_range(&opts, &src, c * CHUNK, scale, d));
    Ok(scale)
}

/// `decode(q) * scale` for every code.
pub fn dequantize_per_tensor(format: Fp8Format, q: &[u8], scale: f32) -> Vec<f32> {
    let table = format.table();
    let mut out = vec![0f32; q.len()];
    out.par_chunks_mut(CHUNK)
        .zip(q.par_chunks(CHUNK))
        .for_each(|(d, s)| {
            for (d, &b) in d.iter_mut().zip(s) {
                *d = table[usize::from(b)] * scale;
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QuantError;

    #[test]
    fn amax_maps_to_fmax() {
        let src = [0.5f32, -2.0, 1.0, 0.0];
        let (q, s) = quantize_per_tensor(Fp8Options::DEEPSEEK, &src).unwrap();
        assert_eq!(s, 2.0 / 448.0);
        assert_eq!(q[1], 0xFE);
        assert!((dequantize_per_tensor(Fp8Format::E4M3, &q, s)[1] + 2.0).abs() < 1e-6);
    }

    #[test]
    fn rejects_nan() {
        let err = quantize_per_tensor(Fp8Options::DEEPSEEK, &[1.0, f32::NAN]).unwrap_err();
        assert_eq!(err, QuantError::NonFinite { index: 1 });
    }
}
