//! The bit-level FP8 codec shared by E4M3FN and E5M2.
//!
//! Encoding rounds to nearest, ties to even, on the exact f32 value (one rounding), then
//! saturates to the largest finite code: torch's `x.clamp(-max, max).to(float8)`, which is what
//! compressed-tensors and DeepSeek's quantizers run. NaN keeps its sign and becomes `0x7F | sign`.

/// The parameters of one sign-exponent-mantissa byte format.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spec {
    /// Mantissa bits.
    pub man_bits: u32,
    /// Exponent bias.
    pub bias: u32,
    /// Largest finite magnitude code (sign bit clear).
    pub max_code: u8,
    /// Infinity magnitude code, if the format has one.
    pub inf_code: Option<u8>,
}

/// The NaN code both formats produce (sign bit added by the caller).
const NAN_CODE: u8 = 0x7F;

impl Spec {
    /// f32 bit pattern of the smallest normal value of this format.
    const fn min_normal_bits(self) -> u32 {
        (127 + 1 - self.bias) << 23
    }

    /// `2^(bias - 1 + man_bits)`: multiplies a subnormal value into its integer code.
    fn subnormal_scale(self) -> f32 {
        f32::from_bits((127 + self.bias - 1 + self.man_bits) << 23)
    }

    /// Encodes one f32, rounding to nearest even and saturating to `±max`.
    pub(super) fn encode(self, x: f32) -> u8 {
        let bits = x.to_bits();
        let sign = if bits >> 31 == 1 { 0x80 } else { 0 };
        if x.is_nan() {
            return sign | NAN_CODE;
        }
        let abs = bits & 0x7FFF_FFFF;
        let mag = if abs >= self.min_normal_bits() {
            self.encode_normal(abs)
        } else {
            self.encode_subnormal(f32::from_bits(abs))
        };
        sign | mag.min(self.max_code)
    }

    /// Magnitude code of a value at or above the smallest normal (may exceed `max_code`).
    fn encode_normal(self, abs: u32) -> u8 {
        let rebiased = abs - ((127 - self.bias) << 23);
        let code = round_shift_even(rebiased, 23 - self.man_bits);
        u8::try_from(code).unwrap_or(u8::MAX)
    }

    /// Magnitude code of a value below the smallest normal: an exact scaling, then one rounding.
    fn encode_subnormal(self, abs: f32) -> u8 {
        let k = (abs * self.subnormal_scale()).round_ties_even();
        // `k` lies in 0..=2^man_bits (the last one is the smallest normal's code).
        k as u8
    }

    /// Decodes one code exactly.
    pub(super) const fn decode(self, code: u8) -> f32 {
        let sign = (code as u32 & 0x80) << 24;
        let mag = code & 0x7F;
        let magnitude = if mag > self.max_code {
            match self.inf_code {
                Some(inf) if inf == mag => f32::INFINITY,
                _ => f32::NAN,
            }
        } else {
            self.decode_finite(mag)
        };
        f32::from_bits(magnitude.to_bits() | sign)
    }

    /// Value of a finite magnitude code.
    const fn decode_finite(self, mag: u8) -> f32 {
        let exp = (mag as u32) >> self.man_bits;
        let man = mag as u32 & ((1 << self.man_bits) - 1);
        if exp == 0 {
            // man * 2^(1 - bias - man_bits), exact.
            let ulp = f32::from_bits((127 + 1 - self.bias - self.man_bits) << 23);
            man as f32 * ulp
        } else {
            f32::from_bits(((exp + 127 - self.bias) << 23) | (man << (23 - self.man_bits)))
        }
    }

    /// All 256 decoded values, indexed by code.
    pub(super) const fn table(self) -> [f32; 256] {
        let mut out = [0.0; 256];
        let mut code = 0;
        while code < 256 {
            out[code] = self.decode(code as u8);
            code += 1;
        }
        out
    }
}

/// `v >> shift` rounded to nearest, ties to even (`shift >= 1`).
fn round_shift_even(v: u32, shift: u32) -> u32 {
    let q = v >> shift;
    let rem = v & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    if rem > half || (rem == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_shift_ties_to_even() {
        assert_eq!(round_shift_even(0b1010, 2), 0b10); // 2.5 -> 2
        assert_eq!(round_shift_even(0b1110, 2), 0b100); // 3.5 -> 4
        assert_eq!(round_shift_even(0b1011, 2), 0b11); // 2.75 -> 3
        assert_eq!(round_shift_even(0b1001, 2), 0b10); // 2.25 -> 2
    }
}
