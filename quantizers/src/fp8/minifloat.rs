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
    #[inline]
    pub(super) fn encode(self, x: f32) -> u8 {
        let bits = x.to_bits();
        let sign = if bits >> 31 == 1 { 0x80 } else { 0 };
        let abs = bits & 0x7FFF_FFFF;
        if abs > 0x7F80_0000 {
            return sign | NAN_CODE;
        }
        let mag = if abs >= self.min_normal_bits() {
            self.encode_normal(abs)
        } else {
            self.encode_subnormal(f32::from_bits(abs))
        };
        sign | mag
    }

    /// Magnitude code of a value at or above the smallest normal, saturated to `max_code`.
    #[inline]
    fn encode_normal(self, abs: u32) -> u8 {
        // Re-bias the exponent (no wrap: `abs` is at least the smallest normal), then round
        // the dropped mantissa bits to nearest even; a carry moves into the exponent.
        let v = abs - ((127 - self.bias) << 23);
        let shift = 23 - self.man_bits;
        let code = (v + ((1 << (shift - 1)) - 1) + ((v >> shift) & 1)) >> shift;
        code.min(u32::from(self.max_code)) as u8
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

#[cfg(test)]
mod tests {
    use super::*;

    const E4M3: Spec = Spec {
        man_bits: 3,
        bias: 7,
        max_code: 0x7E,
        inf_code: None,
    };

    #[test]
    fn normal_rounding_ties_to_even() {
        assert_eq!(E4M3.encode(1.0625), 0x38); // tie 1.0 / 1.125 -> 1.0
        assert_eq!(E4M3.encode(1.1875), 0x3A); // tie 1.125 / 1.25 -> 1.25
        assert_eq!(E4M3.encode(f32::from_bits(0x3F88_0001)), 0x39);
        assert_eq!(E4M3.encode(1.9375), 0x40); // carry into the exponent
    }
}
