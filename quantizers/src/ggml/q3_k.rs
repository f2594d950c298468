//! Q3_K: super-blocks of 256 3-bit quants in 16 sub-blocks with 6-bit signed scales and one
//! f16 super-scale (3.4375 bits per weight).
//!
//! layout: ggml/src/ggml-common.h `block_q3_K` (`hmask: [u8; 32]` third bits (bit `e / 32` of
//! byte `e % 32`), `qs: [u8; 64]` 2-bit pairs as in Q2_K, `scales: [u8; 12]` (low nibbles of
//! scales 0-7, then 8-15 in high nibbles, then the top 2 bits of scale `j` at bit
//! `2 * (j / 4)` of byte `8 + j % 4`), `d: f16`).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_q3_K_ref`; with an importance matrix
//! `quantize_row_q3_K_impl`.

use super::imatrix_util::{sum_squares, weights};
use super::kquant_util::{
    get_f16, make_q3_quants, make_qx_quants, nearest_int, pack_2bit, put_f16,
};

const QK: usize = 256;
const BYTES: usize = 110;
const QS: usize = 32;
const SCALES: usize = 96;
const D: usize = 108;

/// Quantizes one row (a whole number of super-blocks).
pub(super) fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    let (xb, _) = x.as_chunks::<QK>();
    let (yb, _) = y.as_chunks_mut::<BYTES>();
    for (i, (x, y)) in xb.iter().zip(yb).enumerate() {
        let mut l = [0i8; QK];
        match imatrix {
            None => fit_scales_ref(x, &mut l, y),
            Some(im) => fit_scales_weighted(x, &im[i * QK..(i + 1) * QK], &mut l, y),
        }
        requantize(x, y, &mut l);
        pack(&l.map(|v| v as u8), y);
    }
}

/// Stores 6-bit scale `j` (0..64) in the 12-byte layout; `q` must start zeroed.
fn pack_scale(j: usize, l: u8, q: &mut [u8]) {
    if j < 8 {
        q[j] = l & 0xf;
    } else {
        q[j - 8] |= (l & 0xf) << 4;
    }
    q[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
}

/// Signed scale `j` (-32..32) of the 12-byte layout.
fn scale(j: usize, q: &[u8]) -> i8 {
    let low = if j < 8 { q[j] & 0xf } else { q[j - 8] >> 4 };
    let high = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i8 - 32
}

fn fit_scales_ref(x: &[f32; QK], l: &mut [i8; QK], y: &mut [u8; BYTES]) {
    let mut scales = [0f32; 16];
    let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
    for (j, (xs, ls)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
        scales[j] = make_q3_quants(4, xs, ls);
        if scales[j].abs() > amax {
            amax = scales[j].abs();
            max_scale = scales[j];
        }
    }
    y[SCALES..D].fill(0);
    if max_scale == 0.0 {
        put_f16(&mut y[D..], 0.0);
        return;
    }
    let iscale = -32.0 / max_scale;
    for (j, &s) in scales.iter().enumerate() {
        let q = (nearest_int(iscale * s) as i8).clamp(-32, 31) + 32;
        pack_scale(j, q as u8, &mut y[SCALES..D]);
    }
    put_f16(&mut y[D..], 1.0 / iscale);
}

fn fit_scales_weighted(x: &[f32; QK], qw: &[f32], l: &mut [i8; QK], y: &mut [u8; BYTES]) {
    let sigma2 = 2.0 * sum_squares(x) / QK as f32;
    let (mut scales, mut sw) = ([0f32; 16], [0f32; 16]);
    for (j, (xs, ls)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
        let w: [f32; 16] = weights(xs, &qw[16 * j..], sigma2);
        sw[j] = w.iter().fold(0.0f32, |s, &v| s + v);
        scales[j] = make_qx_quants(4, xs, ls, Some(&w));
    }
    y[SCALES..D].fill(0);
    let mut ls = [0i8; 16];
    let d_block = make_qx_quants(32, &scales, &mut ls, Some(&sw));
    for (j, &q) in ls.iter().enumerate() {
        pack_scale(j, q as u8, &mut y[SCALES..D]);
    }
    put_f16(&mut y[D..], d_block);
}

/// Recomputes the quants (offset by 4) from the stored scales; zero-scale sub-blocks keep the
/// quants of the fit.
fn requantize(x: &[f32; QK], y: &[u8; BYTES], l: &mut [i8; QK]) {
    let d_all = get_f16(&y[D..]);
    for j in 0..16 {
        let d = d_all * f32::from(scale(j, &y[SCALES..D]));
        if d == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            l[i] = (nearest_int(x[i] / d).clamp(-4, 3) + 4) as i8;
        }
    }
}

fn pack(l: &[u8; QK], y: &mut [u8; BYTES]) {
    let mut low = *l;
    y[..QS].fill(0);
    for (e, v) in low.iter_mut().enumerate() {
        if *v > 3 {
            y[e % 32] |= 1 << (e / 32);
            *v -= 4;
        }
    }
    pack_2bit(&low, &mut y[QS..SCALES]);
}

/// Decodes whole super-blocks.
pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let d_all = get_f16(&b[D..]);
        for (e, o) in y.iter_mut().enumerate() {
            let dl = d_all * f32::from(scale(e / 16, &b[SCALES..D]));
            let q = (b[QS + 32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3;
            let hi = if b[e % 32] & (1 << (e / 32)) != 0 {
                0
            } else {
                4
            };
            *o = dl * (i32::from(q) - hi) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_error_bound, sample};
    use super::*;
    use proptest::prelude::*;
    use wharf_core::DType;

    #[test]
    fn q3_k_error_is_bounded() {
        check_error_bound(DType::Q3K, &sample(2048, 11), |amax| amax / 4.0 * 1.1);
    }

    proptest! {
        #[test]
        fn scales_round_trip(s in proptest::array::uniform16(0u8..64)) {
            let mut q = [0u8; 12];
            for (j, &v) in s.iter().enumerate() {
                pack_scale(j, v, &mut q);
            }
            for (j, &v) in s.iter().enumerate() {
                prop_assert_eq!(i32::from(scale(j, &q)), i32::from(v) - 32);
            }
        }
    }
}
