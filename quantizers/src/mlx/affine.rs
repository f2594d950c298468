//! One group of MLX affine quantization, as `mlx/backend/cpu/quantized.cpp` `quantize` does it,
//! entirely in f32:
//!
//! 1. `scale = max((max - min) / (2^bits - 1), 1e-7)`;
//! 2. if `|min| > |max|` the edge is `min`, else the edge is `max` and the scale is negated;
//! 3. `q0 = rint(edge / scale)`; if `q0 != 0` then `scale = edge / q0`, `bias = edge`,
//!    otherwise `bias = 0`;
//! 4. `q = clamp(rint((w - bias) / scale), 0, 2^bits - 1)`.
//!
//! `rint` rounds half to even (the CPU kernel; Metal rounds half away from zero).

/// MLX's floor on the scale magnitude.
pub(super) const EPS: f32 = 1e-7;

/// C++ `std::max(a, b)`: `a` unless `a < b`.
#[inline(always)]
pub(super) fn cxx_max(a: f32, b: f32) -> f32 {
    if a < b { b } else { a }
}

/// C++ `std::min(a, b)`: `a` unless `b < a`.
#[inline(always)]
pub(super) fn cxx_min(a: f32, b: f32) -> f32 {
    if b < a { b } else { a }
}

/// The largest code.
pub(super) fn n_bins(bits: u32) -> f32 {
    ((1u32 << bits) - 1) as f32
}

/// 2^23: adding it to a value in `[0, 2^23)` rounds that value to an integer (nearest even).
pub(super) const MAGIC: f32 = 8_388_608.0;

/// `(scale, bias)` of a group whose extremes are `w_min` and `w_max`, in f32 (before rounding
/// to the storage dtype).
///
/// A zero extreme enters only through `|.|`, through `w_max - w_min` next to a non-zero other
/// extreme, or (both zero) as an edge that gives `q0 = 0` and bias `0.0`: its sign never shows.
#[cfg(test)]
pub(super) fn params(w_min: f32, w_max: f32, bits: u32) -> (f32, f32) {
    let mask = w_min.abs() > w_max.abs();
    let mut scale = cxx_max((w_max - w_min) / n_bins(bits), EPS);
    if !mask {
        scale = -scale;
    }
    let edge = if mask { w_min } else { w_max };
    let q0 = (edge / scale).round_ties_even();
    if q0 != 0.0 {
        (edge / q0, edge)
    } else {
        (scale, 0.0)
    }
}

/// Codes of one group under `(scale, bias)`: `clamp(rint((w - bias) / scale), 0, 2^bits - 1)`.
///
/// Clamping before rounding gives the same code (the bounds are integers, and a value above the
/// odd top rounds down to it or, at a tie, up past it and is clamped back), and a clamped value
/// rounds with one add of 2^23 that also leaves the integer in the low bits: no libm `rint`,
/// no branch. The quotient is never NaN for finite input (it may be infinite, and is clamped).
#[cfg(test)]
pub(super) fn group_codes(group: &[f32], bits: u32, scale: f32, bias: f32, out: &mut [u32]) {
    let top = n_bins(bits);
    for (q, &w) in out.iter_mut().zip(group) {
        let v = cxx_min(cxx_max((w - bias) / scale, 0.0), top);
        *q = (v + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MLX's kernel as written: one serial min/max chain, then `rint` and a clamp per code.
    fn reference(group: &[f32], bits: u32) -> (f32, f32, Vec<u32>) {
        let mut w_min = f32::INFINITY;
        let mut w_max = f32::NEG_INFINITY;
        for &w in group {
            w_max = cxx_max(w_max, w);
            w_min = cxx_min(w_min, w);
        }
        let (scale, bias) = params(w_min, w_max, bits);
        let codes = group
            .iter()
            .map(|&w| {
                let v = ((w - bias) / scale).round_ties_even();
                cxx_min(cxx_max(v, 0.0), n_bins(bits)) as u32
            })
            .collect();
        (scale, bias, codes)
    }

    fn fast(group: &[f32], bits: u32) -> (f32, f32, Vec<u32>) {
        let lo = group.iter().fold(f32::INFINITY, |a, &b| cxx_min(a, b));
        let hi = group.iter().fold(f32::NEG_INFINITY, |a, &b| cxx_max(a, b));
        let (scale, bias) = params(lo, hi, bits);
        let mut codes = vec![0; group.len()];
        group_codes(group, bits, scale, bias, &mut codes);
        (scale, bias, codes)
    }

    fn check(group: &[f32]) {
        for bits in [2, 3, 4, 5, 6, 8] {
            let (want, got) = (reference(group, bits), fast(group, bits));
            assert_eq!(want.0.to_bits(), got.0.to_bits(), "scale {bits} {group:?}");
            assert_eq!(want.1.to_bits(), got.1.to_bits(), "bias {bits} {group:?}");
            assert_eq!(want.2, got.2, "codes {bits} {group:?}");
        }
    }

    #[test]
    fn fast_path_matches_the_kernel_as_written() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..20_000 {
            let n = [32, 64, 128, 37][case % 4];
            let spread = [1.0f32, 1e-3, 1e3, 1e-30, 1e30][case % 5];
            let g: Vec<f32> = (0..n)
                .map(|_| {
                    let r = next();
                    // Every so often a value from a short list: ties, zeros, repeats.
                    match r % 16 {
                        0 => 0.0,
                        1 => -0.0,
                        2 => (r >> 8) as u8 as f32 * 0.5 - 64.0,
                        _ => ((r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * spread,
                    }
                })
                .collect();
            check(&g);
        }
    }

    #[test]
    fn signed_zeros_and_constant_groups() {
        check(&[0.0, -0.0, 0.0, -0.0]);
        check(&[-0.0, 0.0, -0.0, 0.0]);
        check(&[-0.0; 8]);
        check(&[0.0, -0.0, 1.0, -0.0]);
        check(&[-0.0, -1.0, 0.0]);
        check(&[3.0; 64]);
        check(&[-2.5; 32]);
        check(&[f32::MAX, -f32::MAX, 0.0, 1.0]);
        check(&[1e-45, -1e-45, 0.0, 2e-45]);
    }

    #[test]
    fn edge_is_exact_and_scale_can_be_negative() {
        let g = [0.0f32, 0.25, 0.5, 1.0];
        let (scale, bias, q) = fast(&g, 2);
        // |min| <= |max|: edge = max = 1, scale = -1/3, q0 = -3, scale = 1 / -3.
        assert_eq!(bias, 1.0);
        assert_eq!(scale, 1.0 / -3.0);
        assert_eq!(q, [3, 2, 2, 0]);
    }

    #[test]
    fn negative_edge() {
        let (scale, bias, _) = fast(&[-2.0f32, 0.0, 1.0], 4);
        assert_eq!(bias, -2.0);
        assert!(scale > 0.0);
    }

    #[test]
    fn constant_zero_group() {
        let (scale, bias, _) = fast(&[0.0; 32], 4);
        assert_eq!((scale, bias), (-EPS, 0.0));
    }
}
