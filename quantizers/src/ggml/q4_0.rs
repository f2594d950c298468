//! Q4_0: blocks of 32 4-bit quants (offset 8) sharing one f16 scale (4.5 bits per weight).
//!
//! layout: ggml/src/ggml-common.h `block_q4_0` (`d: f16`, `qs: [u8; 16]`, element `j` in the
//! low nibble of byte `j`, element `j + 16` in its high nibble).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_q4_0_ref`; with an importance matrix
//! `quantize_row_q4_0_impl`.

use super::imatrix_util::{row_blocks, weights};
use super::kquant_util::{get_f16, make_qx_quants, put_f16, signed_abs_max};
use super::small_int::{FAST_MIN_AMAX, floor_small, low_byte};

const QK: usize = 32;
const BYTES: usize = 18;

/// Quantizes one row (a whole number of blocks).
pub(super) fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    row_blocks::<QK, BYTES>(x, imatrix, y, quantize_block, quantize_block_weighted);
}

fn quantize_block(x: &[f32; QK], y: &mut [u8; BYTES]) {
    let (amax, max) = signed_abs_max(x);
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(&mut y[..2], d);
    let l = match amax >= FAST_MIN_AMAX {
        true => quants_fast(x, id),
        false => quants_cast(x, id),
    };
    for j in 0..QK / 2 {
        y[2 + j] = l[j] | (l[j + QK / 2] << 4);
    }
}

/// C's `MIN(15, (int8_t)(x * id + 8.5f))` per element.
fn quants_cast(x: &[f32; QK], id: f32) -> [u8; QK] {
    std::array::from_fn(|j| ((x[j] * id + 8.5) as i32).min(15) as u8)
}

/// [`quants_cast`] when `|x * id| <= 8` (within rounding): the sums lie in `(0, 17)`.
fn quants_fast(x: &[f32; QK], id: f32) -> [u8; QK] {
    std::array::from_fn(|j| low_byte(floor_small(x[j] * id + 8.5).min(15.0)))
}

fn quantize_block_weighted(x: &[f32; QK], qw: &[f32; QK], sigma2: f32, y: &mut [u8; BYTES]) {
    let w: [f32; QK] = weights(x, qw, sigma2);
    let mut l = [0i8; QK];
    let d = make_qx_quants(8, x, &mut l, Some(&w));
    put_f16(&mut y[..2], d);
    for j in 0..QK / 2 {
        y[2 + j] = l[j] as u8 | ((l[j + QK / 2] as u8) << 4);
    }
}

/// Decodes whole blocks.
pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = get_f16(b);
        for j in 0..QK / 2 {
            y[j] = (i32::from(b[2 + j] & 0xf) - 8) as f32 * d;
            y[j + QK / 2] = (i32::from(b[2 + j] >> 4) - 8) as f32 * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_error_bound, sample};
    use super::*;
    use wharf_core::DType;

    #[test]
    fn fast_quants_match_the_casts() {
        let x = sample(64 * 1024, 12);
        let scales = [1.0, 1e-3, 1e-20, 3e4];
        for (b, xb) in x.as_chunks::<QK>().0.iter().enumerate() {
            let xb = xb.map(|v| v * scales[b % 4]);
            let (amax, max) = signed_abs_max(&xb);
            let id = 1.0 / (max / -8.0);
            assert!(amax >= FAST_MIN_AMAX);
            assert_eq!(quants_fast(&xb, id), quants_cast(&xb, id), "block {b}");
        }
    }

    #[test]
    fn q4_0_error_is_within_one_step() {
        check_error_bound(DType::Q4_0, &sample(1024, 4), |amax| amax / 8.0 * 1.01);
    }
}
