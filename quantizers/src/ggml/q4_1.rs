//! Q4_1: blocks of 32 4-bit quants with an f16 scale and an f16 minimum (5 bits per weight).
//!
//! layout: ggml/src/ggml-common.h `block_q4_1` (`d: f16`, `m: f16`, `qs: [u8; 16]`, element
//! `j` in the low nibble of byte `j`, element `j + 16` in its high nibble).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_q4_1_ref`; with an importance matrix
//! `quantize_row_q4_1_impl`.

use super::imatrix_util::{QKX3, row_blocks, weights};
use super::kquant_util::{QkxParams, get_f16, make_qkx_quants, put_f16};

const QK: usize = 32;
const BYTES: usize = 20;

/// Quantizes one row (a whole number of blocks).
pub(super) fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    row_blocks::<QK, BYTES>(x, imatrix, y, quantize_block, quantize_block_weighted);
}

fn quantize_block(x: &[f32; QK], y: &mut [u8; BYTES]) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        min = if v < min { v } else { min };
        max = if v > max { v } else { max };
    }
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(&mut y[..2], d);
    put_f16(&mut y[2..4], min);
    let q = |v: f32| (((v - min) * id + 0.5) as i32).min(15) as u8;
    for j in 0..QK / 2 {
        y[4 + j] = q(x[j]) | (q(x[j + QK / 2]) << 4);
    }
}

fn quantize_block_weighted(x: &[f32; QK], qw: &[f32; QK], sigma2: f32, y: &mut [u8; BYTES]) {
    let w: [f32; QK] = weights(x, qw, sigma2);
    let mut l = [0u8; QK];
    let p = QkxParams { nmax: 15, ..QKX3 };
    let (d, min) = make_qkx_quants(&p, x, &w, &mut l);
    put_f16(&mut y[..2], d);
    put_f16(&mut y[2..4], -min);
    for j in 0..QK / 2 {
        y[4 + j] = l[j] | (l[j + QK / 2] << 4);
    }
}

/// Decodes whole blocks.
pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let (d, m) = (get_f16(b), get_f16(&b[2..]));
        for j in 0..QK / 2 {
            y[j] = f32::from(b[4 + j] & 0xf) * d + m;
            y[j + QK / 2] = f32::from(b[4 + j] >> 4) * d + m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_error_bound, sample};
    use wharf_core::DType;

    #[test]
    fn q4_1_error_is_within_one_step() {
        check_error_bound(DType::Q4_1, &sample(1024, 5), |amax| {
            amax * 2.0 / 15.0 * 0.6
        });
    }
}
