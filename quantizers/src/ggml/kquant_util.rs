//! Helpers shared by the GGML codecs: f16 fields, `nearest_int`, and the scale searches that
//! libggml's k-quants run per sub-block.
//!
//! Source: ggml/src/ggml-quants.c (`nearest_int`, `make_qx_quants`, `make_q3_quants`,
//! `make_qkx2_quants`, `make_qkx3_quants`, `get_scale_min_k4`). Every float expression keeps the
//! C operand order and f32 precision; nothing is fused, so results match a non-FMA libggml.

use half::f16;

/// `GROUP_MAX_EPS`: below this absolute maximum a group counts as all zero.
pub(super) const GROUP_MAX_EPS: f32 = 1e-15;

/// Writes `x` rounded to f16 (nearest even) as two little-endian bytes.
#[inline]
pub(super) fn put_f16(dst: &mut [u8], x: f32) {
    dst[..2].copy_from_slice(&f16::from_f32(x).to_le_bytes());
}

/// Reads a little-endian f16 as f32.
#[inline]
pub(super) fn get_f16(src: &[u8]) -> f32 {
    f16::from_le_bytes([src[0], src[1]]).to_f32()
}

/// `x` rounded through f16 and back, as libggml re-reads a scale it just stored.
#[inline]
pub(super) fn f16_round(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// Round to nearest (ties to even) through the 1.5 * 2^23 trick; garbage-in-garbage-out for
/// |x| > 2^22 exactly like the C helper (whose assert is compiled out).
#[inline]
pub(super) fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// C's `roundf` (halves away from zero), inline. On baseline x86-64 (SSE2, no rounding
/// instruction) `f32::round` is an out-of-line libm call that cost Q8_0 a tenth of its time;
/// below 2^23 truncation through `i32` and the exact fraction `x - t` decide the same way, and
/// from 2^23 on every f32 is already an integer.
#[inline]
pub(super) fn round_away(x: f32) -> f32 {
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x;
    }
    // Branch-free: the compare results are added as 0/1, so the loop over a block vectorises.
    let i = x as i32;
    let f = x - i as f32;
    let r = i + i32::from(f >= 0.5) - i32::from(f <= -0.5);
    (r as f32).copysign(x)
}

/// The element of largest magnitude (first one on ties) and its magnitude.
#[inline]
pub(super) fn signed_abs_max(x: &[f32]) -> (f32, f32) {
    let amax = crate::reduce::abs_max(x);
    let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0);
    (amax, if amax > 0.0 { max } else { 0.0 })
}

/// `make_qx_quants` with `rmse_type == 1`: symmetric quants in `[0, 2 * nmax)` (stored with
/// the `nmax` offset) and the weighted least-squares scale, searched over 19 candidate scales.
/// Weights are `qw` when given, else `x^2`.
pub(super) fn make_qx_quants(nmax: i32, x: &[f32], out: &mut [i8], qw: Option<&[f32]>) -> f32 {
    let (amax, max) = signed_abs_max(x);
    if amax < GROUP_MAX_EPS {
        out.fill(0);
        return 0.0;
    }
    let n = x.len().min(32);
    let x = &x[..n];
    let mut wbuf = [0f32; 32];
    let weights = &mut wbuf[..n];
    match qw {
        Some(q) => weights.copy_from_slice(&q[..n]),
        None => weights.iter_mut().zip(x).for_each(|(w, &v)| *w = v * v),
    }
    let weights = &*weights;
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    // The quants first (independent, so vectorised), then the two sums in C's order.
    let sums = |iscale: f32| {
        let mut lbuf = [0f32; 32];
        let ls = &mut lbuf[..n];
        ls.iter_mut()
            .zip(x)
            .for_each(|(l, &v)| *l = quant(iscale, v) as f32);
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for ((&l, &v), &w) in ls.iter().zip(x).zip(weights) {
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let mut fill = |iscale: f32| {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = (nmax + quant(iscale, v)) as i8;
        }
    };
    let iscale = -(nmax as f32) / max;
    fill(iscale);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            fill(iscale);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// `make_q3_quants` with `do_rmse`: quants in `[0, 2 * nmax)` (offset by `nmax`) refined by up
/// to five rounds of coordinate descent on the `x^2`-weighted error.
pub(super) fn make_q3_quants(nmax: i32, x: &[f32], out: &mut [i8]) -> f32 {
    let (amax, max) = signed_abs_max(x);
    if amax < GROUP_MAX_EPS {
        out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (o, &v) in out.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *o = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut changed = false;
        for (o, &v) in out.iter_mut().zip(x) {
            let w = v * v;
            let cur = f32::from(*o);
            let mut slx = sumlx - w * v * cur;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * cur * cur;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(*o) {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *o = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    out.iter_mut().for_each(|o| *o += nmax as i8);
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Search parameters of `make_qkx2_quants` / `make_qkx3_quants`.
#[derive(Clone, Copy, Debug)]
pub(super) struct QkxParams {
    /// Largest quant.
    pub nmax: i32,
    /// First scale candidate offset (added to `nmax`).
    pub rmin: f32,
    /// Step between candidates.
    pub rdelta: f32,
    /// Number of steps (candidates = `nstep + 1`).
    pub nstep: i32,
    /// Minimise weighted absolute (not squared) error.
    pub use_mad: bool,
}

/// Weighted error of `scale * l + min` against `x`.
#[inline]
fn qkx_error(p: &QkxParams, x: &[f32], w: &[f32], l: &[u8], scale: f32, min: f32) -> f32 {
    let n = x.len().min(32);
    let mut dbuf = [0f32; 32];
    let diffs = &mut dbuf[..n];
    for ((d, &q), &v) in diffs.iter_mut().zip(l).zip(x) {
        let diff = scale * f32::from(q) + min - v;
        *d = if p.use_mad { diff.abs() } else { diff * diff };
    }
    let mut err = 0.0f32;
    for (&d, &w) in diffs.iter().zip(w) {
        err += w * d;
    }
    err
}

/// Asymmetric quants in `[0, nmax]` with a scale and a (non-positive) minimum fitted by weighted
/// least squares over `nstep + 1` candidate scales: `make_qkx2_quants` (and `make_qkx3_quants`,
/// which is the same search when weights are given). Returns `(scale, -min)`. `x.len() <= 32`.
pub(super) fn make_qkx_quants(p: &QkxParams, x: &[f32], w: &[f32], l: &mut [u8]) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        min = if x[i] < min { x[i] } else { min };
        max = if x[i] > max { x[i] } else { max };
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let iscale = p.nmax as f32 / (max - min);
    let quant = |iscale: f32, v: f32, m: f32| nearest_int(iscale * (v - m)).clamp(0, p.nmax) as u8;
    for (o, &v) in l.iter_mut().zip(x) {
        *o = quant(iscale, v, min);
    }
    let mut scale = 1.0 / iscale;
    let mut best = qkx_error(p, x, w, l, scale, min);
    if p.nstep < 1 {
        return (scale, -min);
    }
    let mut aux = [0u8; 32];
    let aux = &mut aux[..n];
    for is in 0..=p.nstep {
        // `min` moves when a candidate wins, and later candidates start from it (as in C).
        let iscale = (p.rmin + p.rdelta * is as f32 + p.nmax as f32) / (max - min);
        for (a, &v) in aux.iter_mut().zip(x) {
            *a = quant(iscale, v, min);
        }
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((&a, &v), &w) in aux.iter().zip(x).zip(w) {
            let q = f32::from(a);
            sum_l += w * q;
            sum_l2 += w * q * q;
            sum_xl += w * q * v;
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let err = qkx_error(p, x, w, aux, this_scale, this_min);
            if err < best {
                l.copy_from_slice(aux);
                best = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Packs sub-block `j`'s 6-bit scale and min into the 12-byte k4 layout (`get_scale_min_k4`'s
/// inverse). Call for `j = 0..8` in order: later calls OR into bytes written by earlier ones.
pub(super) fn pack_scale_min_k4(j: usize, ls: u8, lm: u8, q: &mut [u8]) {
    if j < 4 {
        q[j] = ls;
        q[j + 4] = lm;
    } else {
        q[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        q[j - 4] |= (ls >> 4) << 6;
        q[j] |= (lm >> 4) << 6;
    }
}

/// Sub-block `j`'s 6-bit scale and min from the 12-byte k4 layout (`get_scale_min_k4`).
#[inline]
pub(super) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs 256 2-bit quants as Q2_K/Q3_K store them: per 128 elements, byte `l` holds elements
/// `l`, `l+32`, `l+64`, `l+96` in bits 0-1, 2-3, 4-5, 6-7.
pub(super) fn pack_2bit(l: &[u8; 256], qs: &mut [u8]) {
    for (lq, q) in l.chunks_exact(128).zip(qs.chunks_exact_mut(32)) {
        for i in 0..32 {
            q[i] = lq[i] | (lq[i + 32] << 2) | (lq[i + 64] << 4) | (lq[i + 96] << 6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abs_max_matches_the_serial_scan() {
        let mut state = 0x9e37_79b9_u32;
        for n in [1usize, 7, 8, 16, 31, 32, 33] {
            for _ in 0..200 {
                let x: Vec<f32> = (0..n)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        // Small integers make ties (and +-x pairs) common.
                        (state % 9) as f32 - 4.0
                    })
                    .collect();
                let (mut amax, mut max) = (0.0f32, 0.0f32);
                for &v in &x {
                    if v.abs() > amax {
                        amax = v.abs();
                        max = v;
                    }
                }
                assert_eq!(signed_abs_max(&x), (amax, max), "{x:?}");
                assert_eq!(crate::reduce::abs_max(&x), amax);
            }
        }
    }

    #[test]
    fn round_away_is_roundf() {
        let mut xs = vec![
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.499_999_97,
            -0.499_999_97,
            127.5,
            -127.5,
            126.99,
            8_388_607.5,
            8_388_608.0,
            1e30,
            -1e30,
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
        ];
        let mut state = 0x2545_f491_u32;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            xs.push(f32::from_bits(state) % 300.0);
            xs.push((state % 4000) as f32 / 8.0 - 250.0);
        }
        for x in xs.into_iter().filter(|x| x.is_finite()) {
            assert_eq!(round_away(x).to_bits(), x.round().to_bits(), "{x}");
        }
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-2.6), -3);
        assert_eq!(nearest_int(31.49), 31);
    }

    #[test]
    fn k4_scales_round_trip() {
        let mut q = [0u8; 12];
        let pairs: Vec<(u8, u8)> = (0..8)
            .map(|j| ((j * 9 % 64) as u8, (63 - j * 7) as u8))
            .collect();
        for (j, &(s, m)) in pairs.iter().enumerate() {
            pack_scale_min_k4(j, s, m, &mut q);
        }
        for (j, &p) in pairs.iter().enumerate() {
            assert_eq!(scale_min_k4(j, &q), p);
        }
    }

    #[test]
    fn qx_quants_of_zero_group_is_zero() {
        let mut l = [5i8; 16];
        assert_eq!(make_qx_quants(32, &[0.0; 16], &mut l, None), 0.0);
        assert_eq!(l, [0; 16]);
    }
}
