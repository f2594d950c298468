//! Q6_K: super-blocks of 256 6-bit quants in 16 sub-blocks with 8-bit scales and one f16
//! super-scale (6.5625 bits per weight).
//!
//! layout: ggml/src/ggml-common.h `block_q6_K` (`ql: [u8; 128]` low nibbles, `qh: [u8; 64]`
//! high 2-bit pairs, `scales: [i8; 16]`, `d: f16`).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_q6_K_ref`; with an importance matrix
//! `quantize_row_q6_K_impl` (the matrix replaces the `x^2` weights of `make_qx_quants`).

use super::kquant_lanes::make_qx_quants_x8;
use super::kquant_util::{GROUP_MAX_EPS, get_f16, nearest_int, put_f16};

const QK: usize = 256;
const BYTES: usize = 210;
const QH: usize = 128;
const SCALES: usize = 192;
const D: usize = 208;

/// Quantizes one row (a whole number of super-blocks).
pub(super) fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    let (xb, _) = x.as_chunks::<QK>();
    let (yb, _) = y.as_chunks_mut::<BYTES>();
    for (i, (x, y)) in xb.iter().zip(yb).enumerate() {
        quantize_block(x, imatrix.map(|im| &im[i * QK..(i + 1) * QK]), y);
    }
}

fn quantize_block(x: &[f32; QK], qw: Option<&[f32]>, y: &mut [u8; BYTES]) {
    let mut l = [0i8; QK];
    let mut scales = [0f32; QK / 16];
    // Sixteen sub-blocks of 16: two searches of eight.
    for (h, (xs, ls)) in x.chunks_exact(128).zip(l.chunks_exact_mut(128)).enumerate() {
        let q = qw.map(|q| &q[128 * h..128 * h + 128]);
        scales[8 * h..8 * h + 8].copy_from_slice(&make_qx_quants_x8(32, xs, ls, q));
    }
    let (mut max_scale, mut max_abs) = (0.0f32, 0.0f32);
    for &scale in &scales {
        if scale.abs() > max_abs {
            max_abs = scale.abs();
            max_scale = scale;
        }
    }
    if max_abs < GROUP_MAX_EPS {
        y.fill(0);
        put_f16(&mut y[D..], 0.0);
        return;
    }
    let iscale = -128.0 / max_scale;
    put_f16(&mut y[D..], 1.0 / iscale);
    for (s, &scale) in y[SCALES..D].iter_mut().zip(&scales) {
        *s = nearest_int(iscale * scale).min(127) as i8 as u8;
    }
    let d_all = get_f16(&y[D..]);
    for j in 0..QK / 16 {
        let d = d_all * f32::from(y[SCALES + j] as i8);
        if d == 0.0 {
            continue;
        }
        for ii in 16 * j..16 * j + 16 {
            l[ii] = (nearest_int(x[ii] / d).clamp(-32, 31) + 32) as i8;
        }
    }
    pack(&l.map(|v| v as u8), y);
}

fn pack(l: &[u8; QK], y: &mut [u8; BYTES]) {
    for (n, lq) in l.chunks_exact(128).enumerate() {
        let (ql, qh) = (64 * n, QH + 32 * n);
        for i in 0..32 {
            let q = [lq[i], lq[i + 32], lq[i + 64], lq[i + 96]];
            y[ql + i] = (q[0] & 0xf) | ((q[2] & 0xf) << 4);
            y[ql + i + 32] = (q[1] & 0xf) | ((q[3] & 0xf) << 4);
            y[qh + i] = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
}

/// Decodes whole super-blocks.
pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = get_f16(&b[D..]);
        for (e, o) in y.iter_mut().enumerate() {
            let (n, g, i) = (e / 128, e % 128 / 32, e % 32);
            let byte = b[64 * n + 32 * (g & 1) + i];
            let low = if g < 2 { byte & 0xf } else { byte >> 4 };
            let high = (b[QH + 32 * n + i] >> (2 * g)) & 3;
            let q = i32::from(low | (high << 4)) - 32;
            let sc = f32::from(b[SCALES + e / 16] as i8);
            *o = d * sc * q as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_error_bound, sample};
    use wharf_core::DType;

    #[test]
    fn q6_k_error_is_within_one_step() {
        check_error_bound(DType::Q6K, &sample(2048, 8), |amax| amax / 32.0 * 0.75);
    }
}
