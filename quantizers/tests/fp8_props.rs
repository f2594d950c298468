//! FP8 encoding against a brute-force nearest-code search.

use proptest::prelude::*;
use wharf_quantizers::fp8::Fp8Format;

/// The nearest finite code of `x`'s sign, ties to the even code, saturating.
fn brute_force(fmt: Fp8Format, x: f32) -> u8 {
    let sign = if x.is_sign_negative() { 0x80 } else { 0 };
    let a = f64::from(x.abs());
    if a >= f64::from(fmt.max()) {
        return sign | fmt.encode(fmt.max());
    }
    let mut best = 0u8;
    let mut best_err = f64::INFINITY;
    for mag in 0..=0x7Fu8 {
        let v = fmt.decode(mag);
        if !v.is_finite() {
            continue;
        }
        let err = (f64::from(v) - a).abs();
        if err < best_err || (err == best_err && mag & 1 == 0) {
            best = mag;
            best_err = err;
        }
    }
    sign | best
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn e4m3_is_nearest_even(bits in any::<u32>()) {
        let x = f32::from_bits(bits);
        prop_assume!(x.is_finite());
        prop_assert_eq!(Fp8Format::E4M3.encode(x), brute_force(Fp8Format::E4M3, x));
    }

    #[test]
    fn e5m2_is_nearest_even(bits in any::<u32>()) {
        let x = f32::from_bits(bits);
        prop_assume!(x.is_finite());
        prop_assert_eq!(Fp8Format::E5M2.encode(x), brute_force(Fp8Format::E5M2, x));
    }

    #[test]
    fn small_values_are_nearest_even(x in -600.0f32..600.0) {
        for fmt in [Fp8Format::E4M3, Fp8Format::E5M2] {
            prop_assert_eq!(fmt.encode(x), brute_force(fmt, x));
        }
    }
}

/// Every midpoint between adjacent finite codes, and one ulp either side of it.
#[test]
fn midpoints_round_to_even_and_neighbours_do_not() {
    for fmt in [Fp8Format::E4M3, Fp8Format::E5M2] {
        let max = fmt.encode(fmt.max());
        for lo in 0..max {
            let (a, b) = (fmt.decode(lo), fmt.decode(lo + 1));
            let mid = (a + b) / 2.0; // exact: both have few mantissa bits
            let even = if lo % 2 == 0 { lo } else { lo + 1 };
            let below = f32::from_bits(mid.to_bits() - 1);
            let above = f32::from_bits(mid.to_bits() + 1);
            assert_eq!(fmt.encode(mid), even, "{fmt:?} mid {mid:e}");
            assert_eq!(fmt.encode(below), lo, "{fmt:?} below {mid:e}");
            assert_eq!(fmt.encode(above), lo + 1, "{fmt:?} above {mid:e}");
            assert_eq!(fmt.encode(-mid), 0x80 | even, "{fmt:?} -mid {mid:e}");
        }
    }
}
