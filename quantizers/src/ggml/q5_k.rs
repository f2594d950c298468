//! Q5_K: super-blocks of 256 5-bit quants in 8 sub-blocks of 32, each with a 6-bit scale and
//! 6-bit minimum, under f16 super-scales `d` and `dmin` (5.5 bits per weight).
//!
//! layout: ggml/src/ggml-common.h `block_q5_K` (`d: f16`, `dmin: f16`, `scales: [u8; 12]` as in
//! Q4_K, `qh: [u8; 32]` fifth bits (bit `e / 32` of byte `e % 32`), `qs: [u8; 128]` low
//! nibbles laid out as in Q4_K).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_q5_K_ref`; with an importance matrix
//! `quantize_row_q5_K_impl`. The sub-block fit is shared with Q4_K.

use super::q4_k::{fit_scales_ref, fit_scales_weighted, requantize, sub_scales};

const QK: usize = 256;
const BYTES: usize = 176;
const QH: usize = 16;
const QS: usize = 48;

/// Quantizes one row (a whole number of super-blocks).
pub(super) fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    let (xb, _) = x.as_chunks::<QK>();
    let (yb, _) = y.as_chunks_mut::<BYTES>();
    for (i, (x, y)) in xb.iter().zip(yb).enumerate() {
        let mut l = [0u8; QK];
        match imatrix {
            None => fit_scales_ref(x, 31, &mut l, y),
            Some(im) => fit_scales_weighted(x, 31, &im[i * QK..(i + 1) * QK], &mut l, y),
        }
        requantize(x, 31, &y[..QH], &mut l);
        pack(&l, y);
    }
}

fn pack(l: &[u8; QK], y: &mut [u8; BYTES]) {
    y[QH..QS].fill(0);
    for (n, lq) in l.chunks_exact(64).enumerate() {
        let (m1, m2) = (1u8 << (2 * n), 2u8 << (2 * n));
        for j in 0..32 {
            let (mut l1, mut l2) = (lq[j], lq[j + 32]);
            if l1 > 15 {
                l1 -= 16;
                y[QH + j] |= m1;
            }
            if l2 > 15 {
                l2 -= 16;
                y[QH + j] |= m2;
            }
            y[QS + 32 * n + j] = l1 | (l2 << 4);
        }
    }
}

/// Decodes whole super-blocks.
pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let sub = sub_scales(b);
        for (e, o) in y.iter_mut().enumerate() {
            let byte = b[QS + 32 * (e / 64) + e % 32];
            let low = if e % 64 < 32 { byte & 0xf } else { byte >> 4 };
            let high = if b[QH + e % 32] & (1 << (e / 32)) != 0 {
                16
            } else {
                0
            };
            let (d, m) = sub[e / 32];
            *o = d * f32::from(low + high) - m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_error_bound, sample};
    use wharf_core::DType;

    #[test]
    fn q5_k_error_is_bounded() {
        check_error_bound(DType::Q5K, &sample(2048, 10), |amax| amax * 2.0 / 31.0);
    }
}
