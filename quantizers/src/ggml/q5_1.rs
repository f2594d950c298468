//! Q5_1: blocks of 32 5-bit quants with an f16 scale and an f16 minimum (6 bits per weight).
//!
//! layout: ggml/src/ggml-common.h `block_q5_1` (`d: f16`, `m: f16`, `qh: u32` fifth bits,
//! `qs: [u8; 16]` low nibbles; same bit placement as Q5_0).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_q5_1_ref`; with an importance matrix
//! `quantize_row_q5_1_impl`.

use super::imatrix_util::{QKX3, row_blocks, weights};
use super::kquant_util::{QkxParams, get_f16, make_qkx_quants, put_f16};
use super::q5_0::{pack5, unpack5};

const QK: usize = 32;
const BYTES: usize = 24;

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
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(&mut y[..2], d);
    put_f16(&mut y[2..4], min);
    let l: [u8; QK] = std::array::from_fn(|j| ((x[j] - min) * id + 0.5) as u8);
    pack5(&l, y, 4);
}

fn quantize_block_weighted(x: &[f32; QK], qw: &[f32; QK], sigma2: f32, y: &mut [u8; BYTES]) {
    let w: [f32; QK] = weights(x, qw, sigma2);
    let mut l = [0u8; QK];
    let p = QkxParams { nmax: 31, ..QKX3 };
    let (d, min) = make_qkx_quants(&p, x, &w, &mut l);
    put_f16(&mut y[..2], d);
    put_f16(&mut y[2..4], -min);
    pack5(&l, y, 4);
}

/// Decodes whole blocks.
pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let (d, m) = (get_f16(b), get_f16(&b[2..]));
        for (o, q) in y.iter_mut().zip(unpack5(b, 4)) {
            *o = f32::from(q) * d + m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_error_bound, sample};
    use wharf_core::DType;

    #[test]
    fn q5_1_error_is_within_one_step() {
        check_error_bound(DType::Q5_1, &sample(1024, 7), |amax| {
            amax * 2.0 / 31.0 * 0.6
        });
    }
}
