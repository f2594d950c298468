//! The input of the fused FP8 and MLX quantizers: f32 values, or BF16 bytes read in place.
//!
//! A BF16 source (the common checkpoint dtype) is widened a few dozen elements at a time into a
//! buffer on the stack, so a tensor is never copied whole to f32: the quantizers read 2 bytes
//! per element instead of writing and re-reading 4. Widening BF16 is exact, so the bytes
//! produced are those of the same values given as f32.

use rayon::prelude::*;

use crate::{QuantError, Result};

/// Elements of a row-major tensor.
#[derive(Debug, Clone, Copy)]
pub enum Elements<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// Little-endian BF16, two bytes per element (any alignment).
    Bf16(&'a [u8]),
}

/// Largest run [`Elements::load`] is called with by the kernels (one buffer on the stack).
pub(crate) const RUN: usize = 128;

impl Elements<'_> {
    /// Number of elements (a trailing odd BF16 byte is ignored).
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::Bf16(b) => b.len() / 2,
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element at `i` as f32 (`i < len`).
    pub fn get(&self, i: usize) -> f32 {
        let mut one = [0f32];
        self.load(i, &mut one);
        one[0]
    }

    /// Writes elements `start..start + out.len()` into `out` as f32.
    #[inline(always)]
    pub(crate) fn load(&self, start: usize, out: &mut [f32]) {
        match self {
            Self::F32(v) => out.copy_from_slice(&v[start..start + out.len()]),
            Self::Bf16(b) => {
                let bytes = &b[2 * start..2 * (start + out.len())];
                for (o, c) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
                    *o = f32::from_bits(u32::from(u16::from_le_bytes(*c)) << 16);
                }
            }
        }
    }

    /// All elements as f32 (for callers that need the whole tensor, e.g. a re-layout).
    pub fn to_vec(&self) -> Vec<f32> {
        match self {
            Self::F32(v) => v.to_vec(),
            Self::Bf16(_) => {
                let mut out = vec![0f32; self.len()];
                out.par_chunks_mut(1 << 14)
                    .enumerate()
                    .for_each(|(i, c)| self.load(i << 14, c));
                out
            }
        }
    }

    /// `NonFinite` naming the first NaN or infinity, if there is one.
    pub(crate) fn check_finite(&self) -> Result<()> {
        const CHUNK: usize = 1 << 14;
        let n = self.len();
        let first = (0..n.div_ceil(CHUNK)).into_par_iter().find_map_first(|c| {
            let (start, end) = (c * CHUNK, n.min(c * CHUNK + CHUNK));
            let mut buf = [0f32; RUN];
            let mut i = start;
            while i < end {
                let len = RUN.min(end - i);
                let run = &mut buf[..len];
                self.load(i, run);
                if let Some(p) = first_non_finite(run) {
                    return Some(i + p);
                }
                i += len;
            }
            None
        });
        match first {
            Some(index) => Err(QuantError::NonFinite { index }),
            None => Ok(()),
        }
    }
}

/// Index of the first NaN or infinity in `x` (a branch-free test first, the search only when
/// one is there).
#[inline(always)]
pub(crate) fn first_non_finite(x: &[f32]) -> Option<usize> {
    if max_abs_bits(x) < INF_BITS {
        return None;
    }
    x.iter().position(|v| !v.is_finite())
}

/// Bit pattern of +infinity: an `|x|` bit pattern at or above it is not finite.
pub(crate) const INF_BITS: u32 = 0x7F80_0000;

/// The largest `|x|` bit pattern. For finite values this orders exactly as `|x|` does (IEEE
/// magnitudes are monotone in their bits), and a NaN or infinity makes it at least
/// [`INF_BITS`]; the maximum of integers is exact, so lanes combine in any order.
#[inline(always)]
pub(crate) fn max_abs_bits(x: &[f32]) -> u32 {
    // i32 lanes: the masked patterns are below 2^31, and signed compares vectorise on SSE2.
    let mut lanes = [0i32; 8];
    let (chunks, rest) = x.as_chunks::<8>();
    for c in chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            *m = (*m).max((v.to_bits() & 0x7FFF_FFFF) as i32);
        }
    }
    let tail = rest
        .iter()
        .map(|v| (v.to_bits() & 0x7FFF_FFFF) as i32)
        .fold(0, i32::max);
    lanes.iter().fold(tail, |a, &m| a.max(m)) as u32
}

/// `n` finite BF16 values spread over many exponents, as stored bytes and as their f32 values
/// (the BF16 fast paths are tested against the f32 ones on these).
#[cfg(test)]
pub(crate) fn bf16_test_values(n: usize) -> (Vec<u8>, Vec<f32>) {
    // A multiplicative hash's high bits; `& 0xBFFF` clears the exponent's top bit, so no value
    // is infinite or NaN.
    let bits: Vec<u16> = (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 16) as u16 & 0xBFFF)
        .collect();
    let bytes = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    let f32s = bits
        .iter()
        .map(|&b| f32::from_bits(u32::from(b) << 16))
        .collect();
    (bytes, f32s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16_bytes(v: &[f32]) -> Vec<u8> {
        v.iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect()
    }

    #[test]
    fn bf16_loads_exactly() {
        let v = [
            1.0f32,
            -2.5,
            0.0,
            -0.0,
            f32::from_bits(0x7F7F_0000),
            f32::from_bits(0x0001_0000),
        ];
        let b = bf16_bytes(&v);
        let e = Elements::Bf16(&b);
        assert_eq!(e.len(), v.len());
        assert_eq!(e.to_vec(), v.to_vec());
        assert_eq!(e.get(1), -2.5);
    }

    #[test]
    fn max_abs_bits_orders_as_the_magnitude() {
        let v = [0.5f32, -3.0, 2.0, -0.0, 1e-40, 2.9, 0.1, -0.2, 1.0];
        assert_eq!(f32::from_bits(max_abs_bits(&v)), 3.0);
        assert_eq!(max_abs_bits(&[-0.0, 0.0]), 0);
        assert!(max_abs_bits(&[1.0, f32::NEG_INFINITY]) >= INF_BITS);
        assert!(max_abs_bits(&[f32::NAN, 1.0]) >= INF_BITS);
    }

    #[test]
    fn first_non_finite_is_found_in_either_input() {
        let mut v = vec![1.0f32; 40_000];
        v[33_333] = f32::INFINITY;
        v[39_999] = f32::NAN;
        let err = Elements::F32(&v).check_finite().unwrap_err();
        assert_eq!(err, QuantError::NonFinite { index: 33_333 });
        let b = bf16_bytes(&v);
        let err = Elements::Bf16(&b).check_finite().unwrap_err();
        assert_eq!(err, QuantError::NonFinite { index: 33_333 });
        assert!(Elements::F32(&v[..33_333]).check_finite().is_ok());
    }
}
