//! E5M2 (`float8_e5m2`): 5 exponent bits (bias 15), 2 mantissa bits, IEEE-like: ±inf
//! (`0x7C`), NaN (`0x7D..=0x7F`), largest finite ±57344 (`0x7B`), smallest subnormal 2^-16.
//!
//! [`encode`] saturates: out-of-range values and infinities become ±57344, as torch's
//! `clamp(-57344, 57344).to(float8_e5m2)` does; NaN becomes `0x7F | sign` (torch's NaN;
//! ml_dtypes writes `0x7E`, which decodes to NaN too).

use super::minifloat::Spec;

const SPEC: Spec = Spec {
    man_bits: 2,
    bias: 15,
    max_code: 0x7B,
    inf_code: Some(0x7C),
};

/// Largest finite E5M2 value.
pub const MAX: f32 = 57344.0;

/// Every E5M2 code's value, indexed by the byte.
pub static DECODE: [f32; 256] = SPEC.table();

/// Encodes one value: round to nearest even, saturate to ±57344, NaN to `0x7F | sign`.
#[inline]
pub fn encode(x: f32) -> u8 {
    SPEC.encode(x)
}

/// [`encode`] without branches, for loops that vectorise (same result for every f32).
#[inline(always)]
pub(super) fn encode_branchless(x: f32) -> u8 {
    SPEC.encode_branchless(x)
}

/// Decodes one byte exactly.
pub fn decode(code: u8) -> f32 {
    DECODE[usize::from(code)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_finite_code_round_trips() {
        for code in 0..=255u8 {
            let v = decode(code);
            if v.is_finite() {
                assert_eq!(encode(v), code, "code {code:#04x} value {v}");
            }
        }
    }

    #[test]
    fn specials() {
        assert_eq!(decode(0x7C), f32::INFINITY);
        assert_eq!(decode(0xFC), f32::NEG_INFINITY);
        assert!(decode(0x7D).is_nan() && decode(0xFF).is_nan());
        assert_eq!(encode(f32::INFINITY), 0x7B);
        assert_eq!(encode(61440.0), 0x7B);
        assert_eq!(encode(f32::NAN), 0x7F);
        assert_eq!(decode(0x01), 2f32.powi(-16));
        assert_eq!(encode(2f32.powi(-17)), 0x00);
    }
}
