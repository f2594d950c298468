//! How a scaled FP8 quantizer picks and applies its scales, and the helpers all three share.

use rayon::prelude::*;
use wharf_core::DType;
use wharf_core::cast::{bf16_bits_to_f32, f16_bits_to_f32, f32_to_bf16_bits, f32_to_f16_bits};

use super::Fp8Format;
use crate::{QuantError, Result};

/// The scale an all-zero tensor, row or block gets (any positive scale gives the same bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroScale {
    /// `1.0`: DeepSeek's `weight_scale_inv` convention.
    One,
    /// The compute dtype's machine epsilon: compressed-tensors' `calculate_qparams`.
    Epsilon,
}

/// Format, zero-scale rule and arithmetic of a scaled FP8 quantization.
///
/// With `compute` = F32 the scale is `f32(amax) / fmax` and the code is `encode(w / scale)`, the
/// division rounded once in f32. With BF16 or F16 both the scale and `w / scale` are rounded to
/// that dtype first (torch on a BF16 model: two roundings), so the scales are exactly
/// representable in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fp8Options {
    /// Target byte format.
    pub format: Fp8Format,
    /// Scale of an all-zero region.
    pub zero_scale: ZeroScale,
    /// Dtype the scale and the division are rounded to: F32, BF16 or F16.
    pub compute: DType,
}

impl Fp8Options {
    /// DeepSeek-V3 native FP8: E4M3FN, f32 arithmetic, all-zero blocks get scale 1.
    pub const DEEPSEEK: Self = Self {
        format: Fp8Format::E4M3,
        zero_scale: ZeroScale::One,
        compute: DType::F32,
    };

    /// compressed-tensors `float-quantized`: arithmetic in the source weights' dtype, zero
    /// scales replaced by that dtype's epsilon.
    pub const fn compressed_tensors(format: Fp8Format, compute: DType) -> Self {
        Self {
            format,
            zero_scale: ZeroScale::Epsilon,
            compute,
        }
    }

    /// Checks that `compute` is one of F32, BF16, F16.
    pub(super) fn validate(&self) -> Result<()> {
        match self.compute {
            DType::F32 | DType::BF16 | DType::F16 => Ok(()),
            other => Err(QuantError::Unsupported(other)),
        }
    }

    /// Rounds `x` to the compute dtype (round to nearest even).
    #[inline]
    pub(super) fn round(&self, x: f32) -> f32 {
        round_to(self.compute, x)
    }

    /// The scale for a region whose largest magnitude is `amax`.
    pub(super) fn scale(&self, amax: f32) -> f32 {
        let s = self.round(amax / self.format.max());
        if s != 0.0 {
            return s;
        }
        match self.zero_scale {
            ZeroScale::One => 1.0,
            ZeroScale::Epsilon => self.epsilon(),
        }
    }

    /// Machine epsilon of the compute dtype.
    fn epsilon(&self) -> f32 {
        match self.compute {
            DType::BF16 => 0.0078125,
            DType::F16 => 0.000_976_562_5,
            _ => f32::EPSILON,
        }
    }

    /// The code of `w` under `scale`.
    #[inline]
    pub(super) fn quantize(&self, w: f32, scale: f32) -> u8 {
        self.format.encode(self.round(w / scale))
    }
}

/// `x` rounded to nearest even in `dtype` (BF16 or F16) and widened back; other dtypes keep `x`.
#[inline]
pub(crate) fn round_to(dtype: DType, x: f32) -> f32 {
    match dtype {
        DType::BF16 => bf16_bits_to_f32(f32_to_bf16_bits(x)),
        DType::F16 => f16_bits_to_f32(f32_to_f16_bits(x)),
        _ => x,
    }
}

/// Errors on the first NaN or infinity.
pub(crate) fn check_finite(src: &[f32]) -> Result<()> {
    const CHUNK: usize = 1 << 14;
    let first = src
        .par_chunks(CHUNK)
        .enumerate()
        .find_map_first(|(i, c)| crate::reduce::chunk_non_finite(c).map(|p| i * CHUNK + p));
    match first {
        Some(index) => Err(QuantError::NonFinite { index }),
        None => Ok(()),
    }
}

/// `rows * cols`, checked against `len`.
pub(super) fn check_matrix(
    dtype: DType,
    what: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let expected = rows
        .checked_mul(cols)
        .ok_or_else(|| QuantError::Parameter(format!("{rows}x{cols} overflows")))?;
    check_len(dtype, what, expected, len)
}

/// A `Length` error unless `actual == expected`.
pub(super) fn check_len(
    dtype: DType,
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(QuantError::Length {
            dtype,
            what,
            expected,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_scale_rules() {
        assert_eq!(Fp8Options::DEEPSEEK.scale(0.0), 1.0);
        let ct = Fp8Options::compressed_tensors(Fp8Format::E4M3, DType::BF16);
        assert_eq!(ct.scale(0.0), 0.0078125);
        assert_eq!(Fp8Options::DEEPSEEK.scale(448.0), 1.0);
    }

    #[test]
    fn bf16_compute_rounds_the_scale() {
        let ct = Fp8Options::compressed_tensors(Fp8Format::E4M3, DType::BF16);
        let s = ct.scale(1.0);
        assert_eq!(s, bf16_bits_to_f32(f32_to_bf16_bits(1.0 / 448.0)));
    }
}
