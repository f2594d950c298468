//! Element casts between dense storages, on little-endian bytes.
//!
//! Rounding follows llama.cpp's converter (gguf-py `quants.py`): F16 is IEEE round-to-nearest-even
//! (numpy `astype(float16)`), BF16 is round-to-nearest-even with NaN forced quiet:
//! `(n & 0xffff0000) | (64 << 16)` when `(n & 0x7fffffff) > 0x7f800000`, then
//! `(n + 0x7fff + ((n >> 16) & 1)) >> 16`.
//!
//! Loops work on fixed-size chunks so the compiler vectorises them; results do not depend on
//! how a caller splits the input.

use half::f16;

use crate::DType;

/// A cast between these storages is not an element cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no element cast from {from} to {to}")]
pub struct CastError {
    /// Source dtype.
    pub from: DType,
    /// Destination dtype.
    pub to: DType,
}

/// f32 → bf16 bits with round-to-nearest-even and quiet NaN, as gguf-py does it.
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let mut n = x.to_bits();
    if n & 0x7fff_ffff > 0x7f80_0000 {
        n = (n & 0xffff_0000) | (64 << 16);
    }
    // Wrapping add matches numpy's uint32 arithmetic; only NaN-forced values come near the top.
    (n.wrapping_add(0x7fff).wrapping_add((n >> 16) & 1) >> 16) as u16
}

/// bf16 bits → f32 (exact).
#[inline]
pub fn bf16_bits_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// f32 → f16 bits, round-to-nearest-even.
#[inline]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// f16 bits → f32 (exact).
#[inline]
pub fn f16_bits_to_f32(b: u16) -> f32 {
    f16::from_bits(b).to_f32()
}

/// Whether [`decode_f32`] reads this dtype.
pub fn decodes_to_f32(dtype: DType) -> bool {
    use DType::*;
    matches!(
        dtype,
        F32 | F16 | BF16 | F64 | Bool | U8 | I8 | U16 | I16 | U32 | I32 | U64 | I64
    )
}

/// Whether [`encode_f32`] writes this dtype.
pub fn encodes_from_f32(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
}

fn check_len(dtype: DType, src: usize, dst: usize, per: usize) -> Result<(), CastError> {
    if src != dst.saturating_mul(per) {
        return Err(CastError {
            from: dtype,
            to: DType::F32,
        });
    }
    Ok(())
}

/// Decodes dense little-endian `src` of `dtype` into `dst` (integers become their f32 value).
///
/// `src` must hold exactly `dst.len()` elements.
pub fn decode_f32(dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<(), CastError> {
    use DType::*;
    let err = CastError {
        from: dtype,
        to: F32,
    };
    let width = match dtype {
        F32 | U32 | I32 => 4,
        F16 | BF16 | U16 | I16 => 2,
        F64 | U64 | I64 => 8,
        Bool | U8 | I8 => 1,
        _ => return Err(err),
    };
    check_len(dtype, src.len(), dst.len(), width)?;
    match dtype {
        F32 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        F16 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        BF16 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        F64 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(8)) {
                *d = f64::from_le_bytes(c.try_into().map_err(|_| err)?) as f32;
            }
        }
        U8 | Bool => dst
            .iter_mut()
            .zip(src)
            .for_each(|(d, &b)| *d = f32::from(b)),
        I8 => dst
            .iter_mut()
            .zip(src)
            .for_each(|(d, &b)| *d = f32::from(b as i8)),
        U16 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = f32::from(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        I16 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = f32::from(i16::from_le_bytes([c[0], c[1]]));
            }
        }
        U32 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32;
            }
        }
        I32 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32;
            }
        }
        U64 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(8)) {
                *d = u64::from_le_bytes(c.try_into().map_err(|_| err)?) as f32;
            }
        }
        I64 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(8)) {
                *d = i64::from_le_bytes(c.try_into().map_err(|_| err)?) as f32;
            }
        }
        _ => return Err(err),
    }
    Ok(())
}

/// Encodes f32 values into dense little-endian `dtype` bytes (F32, F16 or BF16).
///
/// `dst` must be exactly the size of `src.len()` elements of `dtype`.
pub fn encode_f32(dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<(), CastError> {
    let err = CastError {
        from: DType::F32,
        to: dtype,
    };
    match dtype {
        DType::F32 => {
            check_len(dtype, dst.len(), src.len(), 4).map_err(|_| err)?;
            for (c, &x) in dst.chunks_exact_mut(4).zip(src) {
                c.copy_from_slice(&x.to_le_bytes());
            }
        }
        DType::F16 => {
            check_len(dtype, dst.len(), src.len(), 2).map_err(|_| err)?;
            for (c, &x) in dst.chunks_exact_mut(2).zip(src) {
                c.copy_from_slice(&f32_to_f16_bits(x).to_le_bytes());
            }
        }
        DType::BF16 => {
            check_len(dtype, dst.len(), src.len(), 2).map_err(|_| err)?;
            for (c, &x) in dst.chunks_exact_mut(2).zip(src) {
                c.copy_from_slice(&f32_to_bf16_bits(x).to_le_bytes());
            }
        }
        _ => return Err(err),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1.0 + half an ulp of bf16 ties to even (1.0); slightly more rounds up.
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8001)), 0x3f81);
        // Signalling NaN becomes quiet, sign kept.
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0xff80_0001)), 0xffc0);
        assert_eq!(f32_to_bf16_bits(f32::INFINITY), 0x7f80);
    }

    #[test]
    fn f16_rounds_to_nearest_even() {
        assert_eq!(f32_to_f16_bits(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7c00);
    }

    #[test]
    fn decode_encode_round_trip() {
        let xs = [1.5f32, -2.25, 0.0, 1e-3];
        let mut b = vec![0u8; 8];
        encode_f32(DType::BF16, &xs, &mut b).unwrap();
        let mut back = [0f32; 4];
        decode_f32(DType::BF16, &b, &mut back).unwrap();
        assert_eq!(&back[..3], &xs[..3]);
        assert!(decode_f32(DType::Q4_0, &b, &mut back).is_err());
        assert!(decode_f32(DType::F32, &b, &mut back).is_err());
    }
}
