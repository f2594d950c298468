//! E4M3FN (`float8_e4m3fn`): 4 exponent bits (bias 7), 3 mantissa bits, no infinities,
//! NaN = `0x7F | sign`, largest finite ±448 (`0x7E`), smallest subnormal 2^-9.

use super::minifloat::Spec;

const SPEC: Spec = Spec {
    man_bits: 3,
    bias: 7,
    max_code: 0x7E,
    inf_code: None,
};

/// Largest finite E4M3FN value.
pub const MAX: f32 = 448.0;

/// Every E4M3FN code's value, indexed by the byte.
pub static DECODE: [f32; 256] = SPEC.table();

/// Encodes one value: round to nearest even, saturate to ±448, NaN to `0x7F | sign`.
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
            if v.is_nan() {
                assert_eq!(code & 0x7F, 0x7F);
            } else {
                assert_eq!(encode(v), code, "code {code:#04x} value {v}");
            }
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(decode(0x7E), 448.0);
        assert_eq!(decode(0x01), 2f32.powi(-9));
        assert_eq!(decode(0x38), 1.0);
        assert_eq!(encode(464.0), 0x7E);
        assert_eq!(encode(f32::INFINITY), 0x7E);
        assert_eq!(encode(f32::NEG_INFINITY), 0xFE);
        assert_eq!(encode(-f32::NAN), 0xFF);
        assert_eq!(encode(1.0625), 0x38);
        assert_eq!(encode(1.1875), 0x3A);
        assert_eq!(encode(f32::from_bits(1)), 0x00);
    }
}
