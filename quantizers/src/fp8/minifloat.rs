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

/// 2^23: adding it to a value in `[0, 2^23)` rounds that value to an integer (nearest even).
const MAGIC: f32 = 8_388_608.0;

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

    /// [`Spec::encode`] without branches, so that loops over it vectorise: both the normal and
    /// the subnormal code are computed and one is selected. Equal to `encode` for every f32
    /// (tested exhaustively on the BF16 patterns and on a sweep of all others).
    #[inline(always)]
    pub(super) fn encode_branchless(self, x: f32) -> u8 {
        let bits = x.to_bits();
        let sign = (bits >> 24) & 0x80;
        let abs = bits & 0x7FFF_FFFF;
        // The normal path of `encode_normal`, wrapping where `abs` is below the normal range
        // (that result is not selected).
        let v = abs.wrapping_sub((127 - self.bias) << 23);
        let shift = 23 - self.man_bits;
        let rounded = v
            .wrapping_add((1 << (shift - 1)) - 1)
            .wrapping_add((v >> shift) & 1);
        let normal = (rounded >> shift).min(u32::from(self.max_code));
        // Subnormal: `abs * 2^k` is exact and below 2^man_bits; adding 2^23 rounds it to an
        // integer, nearest even, and leaves that integer in the low mantissa bits.
        let y = f32::from_bits(abs) * self.subnormal_scale() + MAGIC;
        let sub = y.to_bits().wrapping_sub(MAGIC.to_bits());
        let mag = if abs >= self.min_normal_bits() {
            normal
        } else {
            sub
        };
        let mag = if abs > 0x7F80_0000 {
            u32::from(NAN_CODE)
        } else {
            mag
        };
        (sign | mag) as u8
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

    const E5M2: Spec = Spec {
        man_bits: 2,
        bias: 15,
        max_code: 0x7B,
        inf_code: Some(0x7C),
    };

    fn same(spec: Spec, bits: u32) {
        let x = f32::from_bits(bits);
        assert_eq!(
            spec.encode_branchless(x),
            spec.encode(x),
            "{bits:#010x} ({x:e}), {} mantissa bits",
            spec.man_bits
        );
    }

    #[test]
    fn branchless_encode_matches_on_every_bf16_pattern() {
        // Every sign/exponent/top-7-mantissa pattern, with low halves that hit the ties, the
        // values just off them and the all-ones carry.
        let lows = [
            0u32, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x4000, 0xC000, 0x1234,
        ];
        for spec in [E4M3, E5M2] {
            for hi in 0..=0xFFFFu32 {
                for &lo in &lows {
                    same(spec, (hi << 16) | lo);
                }
            }
        }
    }

    #[test]
    fn branchless_encode_matches_on_a_sweep_of_all_patterns() {
        for spec in [E4M3, E5M2] {
            // A stride coprime with 2^32 visits ~2^22 patterns spread over the whole range.
            let mut bits = 0u32;
            for _ in 0..(1u32 << 22) {
                same(spec, bits);
                bits = bits.wrapping_add(1021);
            }
            // Dense around the subnormal/normal boundary and the saturation point.
            let min_normal = spec.min_normal_bits();
            for b in min_normal - (1 << 16)..min_normal + (1 << 16) {
                same(spec, b);
            }
            let max = f32::from_bits(spec.decode(spec.max_code).to_bits());
            for b in max.to_bits() - (1 << 16)..max.to_bits() + (1 << 16) {
                same(spec, b);
                same(spec, b | 0x8000_0000);
            }
        }
    }

    #[test]
    fn branchless_encode_specials() {
        for spec in [E4M3, E5M2] {
            for x in [
                0.0f32,
                -0.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::NAN,
                -f32::NAN,
                f32::from_bits(1),
                f32::from_bits(0x8000_0001),
                f32::MAX,
                f32::MIN_POSITIVE,
            ] {
                same(spec, x.to_bits());
            }
            for b in 0x7F80_0000..0x7F80_1000u32 {
                same(spec, b);
            }
        }
    }

    #[test]
    fn normal_rounding_ties_to_even() {
        assert_eq!(E4M3.encode(1.0625), 0x38); // tie 1.0 / 1.125 -> 1.0
        assert_eq!(E4M3.encode(1.1875), 0x3A); // tie 1.125 / 1.25 -> 1.25
        assert_eq!(E4M3.encode(f32::from_bits(0x3F88_0001)), 0x39);
        assert_eq!(E4M3.encode(1.9375), 0x40); // carry into the exponent
    }
}
