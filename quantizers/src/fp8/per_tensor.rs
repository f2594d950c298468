//! One scale for a whole tensor: `scale = amax / fmax`, `q = encode(w / scale)`
//! (compressed-tensors `strategy: "tensor"`, a `(1,)` or 0-dim `weight_scale`).

use rayon::prelude::*;

use super::options::{amax, check_finite};
use super::{Fp8Format, Fp8Options};
use crate::Result;

/// Elements per parallel work item.
const CHUNK: usize = 1 << 14;

/// Quantizes `src` with one scale; returns the codes and the scale.
///
/// Errors: [`crate::QuantError::NonFinite`] on NaN or infinity,
/// [`crate::QuantError::Unsupported`] for a compute dtype other than F32/BF16/F16.
pub fn quantize_per_tensor(opts: Fp8Options, src: &[f32]) -> Result<(Vec<u8>, f32)> {
    opts.validate()?;
    check_finite(src)?;
    let a = src.par_chunks(CHUNK).map(amax).reduce(|| 0.0, f32::max);
    let scale = opts.scale(a);
    let mut out = vec![0u8; src.len()];
    out.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| {
            for (d, &w) in d.iter_mut().zip(s) {
                *d = opts.quantize(w, scale);
            }
        });
    Ok((out, scale))
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
