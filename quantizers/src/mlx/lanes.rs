//! The MLX kernel eight groups at a time.
//!
//! Each group's extremes come from [`min_max`] (eight running lanes); the eight `(min, max)`
//! pairs then go through [`params_x8`] together, one group per SIMD lane, with the branches of
//! `affine::params` as selects: the same f32 operations on the same operands, so each lane is
//! bit for bit the scalar result (the tests compare them). The codes of each group are computed
//! as one byte each and packed eight at a time ([`pack::pack_runs`]).
//!
//! The bit width `B` is a constant, so the packing steps are shifts and masks by constants.

use std::array::from_fn;

use wharf_core::DType;

use super::affine::{EPS, MAGIC, cxx_max, cxx_min, n_bins};
use super::{MlxOut, pack};
use crate::Elements;
use crate::fp8::round_to;

/// Groups whose scales and biases are computed together.
pub(super) const LANES: usize = 8;

type Lanes = [f32; LANES];

/// `affine::params` of eight groups: lane `k` is `params(lo[k], hi[k], bits)`.
///
/// A lane whose `q0` is zero still divides by it (an infinity or NaN that the select drops).
#[inline(always)]
pub(super) fn params_x8(lo: Lanes, hi: Lanes, bits: u32) -> (Lanes, Lanes) {
    let n = n_bins(bits);
    let low_edge: [bool; LANES] = from_fn(|k| lo[k].abs() > hi[k].abs());
    let scale: Lanes = from_fn(|k| cxx_max((hi[k] - lo[k]) / n, EPS));
    let scale: Lanes = from_fn(|k| if low_edge[k] { scale[k] } else { -scale[k] });
    let edge: Lanes = from_fn(|k| if low_edge[k] { lo[k] } else { hi[k] });
    let q0: Lanes = from_fn(|k| (edge[k] / scale[k]).round_ties_even());
    let snapped: Lanes = from_fn(|k| edge[k] / q0[k]);
    let s = from_fn(|k| if q0[k] != 0.0 { snapped[k] } else { scale[k] });
    let b = from_fn(|k| if q0[k] != 0.0 { edge[k] } else { 0.0 });
    (s, b)
}

/// The bits an OR of valid `code + MAGIC` patterns can have: MAGIC's, and a code below 2^8.
/// A NaN quotient gives a NaN pattern, whose exponent bits are all set; MAGIC's lowest exponent
/// bit is clear, so a NaN always sets a bit outside this mask.
const CODE_BITS: u32 = MAGIC.to_bits() | 0xFF;

/// Runs of eight values in the largest group.
pub(super) const MAX_RUNS: usize = super::MAX_GROUP / LANES;

/// `(min, max)` of a group given as runs of eight: eight running lanes, then halves folded
/// together.
///
/// Minimum and maximum are exact, so only the sign of a zero result can depend on the order,
/// and `affine::params` gives the same scale and bias for either sign.
#[inline(always)]
fn min_max(v: &[Lanes]) -> (f32, f32) {
    let (mut lo, mut hi) = (v[0], v[0]);
    for c in &v[1..] {
        lo = from_fn(|l| cxx_min(lo[l], c[l]));
        hi = from_fn(|l| cxx_max(hi[l], c[l]));
    }
    let lo: [f32; 4] = from_fn(|l| cxx_min(lo[l], lo[l + 4]));
    let hi: [f32; 4] = from_fn(|l| cxx_max(hi[l], hi[l + 4]));
    let lo: [f32; 2] = from_fn(|l| cxx_min(lo[l], lo[l + 2]));
    let hi: [f32; 2] = from_fn(|l| cxx_max(hi[l], hi[l + 2]));
    (cxx_min(lo[0], lo[1]), cxx_max(hi[0], hi[1]))
}

/// Codes of one group (runs of eight values), packed into `out` (`B` bytes a run); returns the
/// OR of the rounded quotients' bit patterns (see [`CODE_BITS`]).
///
/// Each code is `clamp(rint((w - bias) / scale), 0, 2^B - 1)` as `affine::group_codes` computes
/// it: the clamped quotient plus 2^23 holds the code in its low bits.
#[inline(always)]
fn group<const B: usize>(v: &[Lanes], scale: f32, bias: f32, out: &mut [u8]) -> u32 {
    let top = n_bins(B as u32);
    let mut codes = [[0u8; LANES]; MAX_RUNS];
    let codes = &mut codes[..v.len()];
    let mut seen = 0;
    for (q, &w) in codes.as_flattened_mut().iter_mut().zip(v.as_flattened()) {
        let bits = (cxx_min(cxx_max((w - bias) / scale, 0.0), top) + MAGIC).to_bits();
        seen |= bits;
        *q = bits as u8;
    }
    pack::pack_runs::<B>(codes, out);
    seen
}

/// `round_to(dtype, x)` in every lane (BF16, the common case, inline so that it vectorises).
#[inline(always)]
fn round_lanes(dtype: DType, x: Lanes) -> Lanes {
    use wharf_core::cast::{bf16_bits_to_f32, f32_to_bf16_bits};
    match dtype {
        DType::BF16 => from_fn(|k| bf16_bits_to_f32(f32_to_bf16_bits(x[k]))),
        _ => from_fn(|k| round_to(dtype, x[k])),
    }
}

/// Groups `first..first + scales.len()` of `src`, `8 * runs` elements and `B` bits each, eight
/// at a time; false if one holds a NaN or infinity.
///
/// The group size stays a run-time value: with a constant one the loops were unrolled whole
/// before vectorising, and the unrolled min/max chains came out scalar.
#[inline(always)]
pub(super) fn quantize_groups<const B: usize>(
    src: &Elements<'_>,
    first: usize,
    runs: usize,
    dtype: DType,
    (weight, scales, biases): MlxOut<'_>,
) -> bool {
    let mut vals = [[[0f32; LANES]; MAX_RUNS]; LANES];
    let mut seen = 0;
    let mut finite = true;
    let blocks = weight
        .chunks_mut(LANES * B * runs)
        .zip(scales.chunks_mut(LANES).zip(biases.chunks_mut(LANES)));
    for (i, (w, (s, b))) in blocks.enumerate() {
        let (mut lo, mut hi) = ([0f32; LANES], [0f32; LANES]);
        for (k, v) in vals.iter_mut().enumerate().take(s.len()) {
            let v = &mut v[..runs];
            src.load((first + i * LANES + k) * LANES * runs, v.as_flattened_mut());
            (lo[k], hi[k]) = min_max(v);
        }
        finite &= (0..LANES).all(|k| lo[k] > f32::NEG_INFINITY && hi[k] < f32::INFINITY);
        let (sc, bi) = params_x8(lo, hi, B as u32);
        for (k, out) in w.chunks_exact_mut(B * runs).enumerate() {
            seen |= group::<B>(&vals[k][..runs], sc[k], bi[k], out);
        }
        let n = s.len();
        s.copy_from_slice(&round_lanes(dtype, sc)[..n]);
        b.copy_from_slice(&round_lanes(dtype, bi)[..n]);
    }
    finite && seen & !CODE_BITS == 0
}
