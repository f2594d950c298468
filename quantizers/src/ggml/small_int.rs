//! Float-to-small-integer steps of the 32-element block quantizers (Q4_0, Q5_0, Q8_0), written
//! with float adds and bit masks so a block's loop vectorises.
//!
//! Rust's `as` casts saturate (NaN to 0, out-of-range to the bounds), which baseline x86-64
//! compiles to one scalar conversion and compare per element. libggml's C casts the same
//! values (ggml/src/ggml-quants.c `quantize_row_q4_0_ref`, `quantize_row_q5_0_ref`,
//! `quantize_row_q8_0_ref`); once a block's scale is a normal float, every value reaching a
//! cast is a small number and the helpers below give exactly what the casts give. Blocks
//! whose largest magnitude is below [`FAST_MIN_AMAX`] keep the casts.

/// Smallest block maximum for which the helpers apply: the block scale (`amax / 127` at the
/// least) is then normal and its inverse finite, so `|x * id|` stays within a hair of the
/// quant range.
pub(super) const FAST_MIN_AMAX: f32 = 1e-30;

/// 1.5 * 2^23: adding it leaves the integer part of a small value in the low mantissa bits.
const MAGIC: f32 = 12_582_912.0;

/// `floor(v)` for `0 <= v < 2^22`, equal to `v as i32` there.
#[inline(always)]
pub(super) fn floor_small(v: f32) -> f32 {
    let r = (v + MAGIC) - MAGIC;
    r - f32::from(u8::from(r > v))
}

/// C's `roundf` for `|x| < 2^22` (halves away from zero), as
/// [`round_away`](super::kquant_util::round_away) gives it.
#[inline(always)]
pub(super) fn round_away_small(x: f32) -> f32 {
    let a = x.abs();
    let r = (a + MAGIC) - MAGIC;
    // `a - r` is exact; a tie rounded down to even goes up instead.
    let r = r + f32::from(u8::from(a - r >= 0.5));
    r.copysign(x)
}

/// The low byte of an integer-valued `i` with `|i| < 2^22`: `i as i32 as u8`.
#[inline(always)]
pub(super) fn low_byte(i: f32) -> u8 {
    (i + MAGIC).to_bits() as u8
}

#[cfg(test)]
mod tests {
    use super::super::kquant_util::round_away;
    use super::*;

    fn values() -> Vec<f32> {
        let mut v = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.499_999_97,
            -0.499_999_97,
        ];
        v.extend([
            16.5,
            32.5,
            31.999_998,
            127.5,
            -127.5,
            4_194_303.5,
            -4_194_303.5,
        ]);
        let mut s = 0x2545_f491_u32;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            v.push((s % 600_000) as f32 / 4096.0 - 70.0);
            v.push(f32::from_bits(s) % 4_194_303.0);
        }
        v.into_iter().filter(|x| x.is_finite()).collect()
    }

    #[test]
    fn helpers_match_the_casts() {
        for x in values() {
            if x >= 0.0 {
                assert_eq!(floor_small(x), x as i32 as f32, "{x}");
            }
            let r = round_away_small(x);
            assert_eq!(r.to_bits(), round_away(x).to_bits(), "{x}");
            assert_eq!(low_byte(r), r as i32 as u8, "{x}");
            assert_eq!(low_byte(r.clamp(-128.0, 127.0)), r as i8 as u8, "{x}");
        }
    }
}
