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
const EPS: f32 = 1e-7;

/// C++ `std::max(a, b)`: `a` unless `a < b`.
fn cxx_max(a: f32, b: f32) -> f32 {
    if a < b { b } else { a }
}

/// C++ `std::min(a, b)`: `a` unless `b < a`.
fn cxx_min(a: f32, b: f32) -> f32 {
    if b < a { b } else { a }
}

/// The largest code.
pub(super) fn n_bins(bits: u32) -> f32 {
    ((1u32 << bits) - 1) as f32
}

/// `(scale, bias)` of one group, in f32 (before rounding to the storage dtype).
pub(super) fn group_params(group: &[f32], bits: u32) -> (f32, f32) {
    let mut w_min = f32::INFINITY;
    let mut w_max = f32::NEG_INFINITY;
    for &w in group {
        w_max = cxx_max(w_max, w);
        w_min = cxx_min(w_min, w);
    }
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

/// Codes of one group under `(scale, bias)`.
pub(super) fn group_codes(group: &[f32], bits: u32, scale: f32, bias: f32, out: &mut [u32]) {
    let top = n_bins(bits);
    for (q, &w) in out.iter_mut().zip(group) {
        let v = ((w - bias) / scale).round_ties_even();
        // Clamped to 0..=255, so the cast is exact.
        *q = cxx_min(cxx_max(v, 0.0), top) as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_is_exact_and_scale_can_be_negative() {
        let g = [0.0f32, 0.25, 0.5, 1.0];
        let (scale, bias) = group_params(&g, 2);
        // |min| <= |max|: edge = max = 1, scale = -1/3, q0 = -3, scale = 1 / -3.
        assert_eq!(bias, 1.0);
        assert_eq!(scale, 1.0 / -3.0);
        let mut q = [0u32; 4];
        group_codes(&g, 2, scale, bias, &mut q);
        assert_eq!(q, [3, 2, 2, 0]);
    }

    #[test]
    fn negative_edge() {
        let g = [-2.0f32, 0.0, 1.0];
        let (scale, bias) = group_params(&g, 4);
        assert_eq!(bias, -2.0);
        assert!(scale > 0.0);
    }

    #[test]
    fn constant_zero_group() {
        let (scale, bias) = group_params(&[0.0; 32], 4);
        assert_eq!((scale, bias), (-EPS, 0.0));
    }
}
