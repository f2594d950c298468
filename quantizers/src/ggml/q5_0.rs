//! Q5_0: blocks of 32 5-bit quants (offset 16) sharing one f16 scale (5.5 bits per weight).
//!
//! layout: ggml/src/ggml-common.h `block_q5_0` (`d: f16`, `qh: u32` little-endian fifth bits,
//! bit `j` for element `j`, `qs: [u8; 16]` low nibbles, element `j` low, `j + 16` high).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_q5_0_ref`; with an importance matrix
//! `quantize_row_q5_0_impl`.

use super::imatrix_util::{row_blocks, weights};
use super::kquant_util::{get_f16, make_qx_quants, put_f16, signed_abs_max};
use super::small_int::{FAST_MIN_AMAX, floor_small, low_byte};

const QK: usize = 32;
const BYTES: usize = 22;

/// Quantizes one row (a whole number of blocks).
pub(super) fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    row_blocks::<QK, BYTES>(x, imatrix, y, quantize_block, quantize_block_weighted);
}

/// Stores 32 5-bit quants after the scale(s) that occupy `y[..at]`.
pub(super) fn pack5(l: &[u8; QK], y: &mut [u8], at: usize) {
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        let (a, b) = (l[j], l[j + QK / 2]);
        y[at + 4 + j] = (a & 0xf) | ((b & 0xf) << 4);
        qh |= u32::from((a & 0x10) >> 4) << j;
        qh |= u32::from((b & 0x10) >> 4) << (j + QK / 2);
    }
    y[at..at + 4].copy_from_slice(&qh.to_le_bytes());
}

/// The 32 5-bit quants stored after `y[..at]`.
pub(super) fn unpack5(y: &[u8], at: usize) -> [u8; QK] {
    let qh = u32::from_le_bytes([y[at], y[at + 1], y[at + 2], y[at + 3]]);
    std::array::from_fn(|j| {
        let (nib, bit) = match j < QK / 2 {
            true => (y[at + 4 + j] & 0xf, (qh >> j) & 1),
            false => (y[at + 4 + j - QK / 2] >> 4, (qh >> j) & 1),
        };
        nib | ((bit as u8) << 4)
    })
}

fn quantize_block(x: &[f32; QK], y: &mut [u8; BYTES]) {
    let (amax, max) = signed_abs_max(x);
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(&mut y[..2], d);
    let l = match amax >= FAST_MIN_AMAX {
        true => quants_fast(x, id),
        false => quants_cast(x, id),
    };
    pack5(&l, y, 2);
}

/// C's `MIN(31, (int8_t)(x * id + 16.5f))` per element.
fn quants_cast(x: &[f32; QK], id: f32) -> [u8; QK] {
    std::array::from_fn(|j| ((x[j] * id + 16.5) as i32).min(31) as u8)
}

/// [`quants_cast`] when `|x * id| <= 16` (within rounding): the sums lie in `(0, 33)`.
fn quants_fast(x: &[f32; QK], id: f32) -> [u8; QK] {
    std::array::from_fn(|j| low_byte(floor_small(x[j] * id + 16.5).min(31.0)))
}

fn quantize_block_weighted(x: &[f32; QK], qw: &[f32; QK], sigma2: f32, y: &mut [u8; BYTES]) {
    let w: [f32; QK] = weights(x, qw, sigma2);
    let mut l = [0i8; QK];
    let d = make_qx_quants(16, x, &mut l, Some(&w));
    put_f16(&mut y[..2], d);
    pack5(&l.map(|v| v as u8), y, 2);
}

/// Decodes whole blocks.
pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = get_f16(b);
        for (o, q) in y.iter_mut().zip(unpack5(b, 2)) {
            *o = (i32::from(q) - 16) as f32 * d;
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
    fn q5_0_error_is_within_one_step() {
        check_error_bound(DType::Q5_0, &sample(1024, 6), |amax| amax / 16.0 * 1.01);
    }

    #[test]
    fn fast_quants_match_the_casts() {
        let x = sample(64 * 1024, 11);
        let scales = [1.0, 1e-3, 1e-20, 3e4];
        for (b, xb) in x.as_chunks::<QK>().0.iter().enumerate() {
            let xb = xb.map(|v| v * scales[b % 4]);
            let (amax, max) = signed_abs_max(&xb);
            let id = 1.0 / (max / -16.0);
            assert!(amax >= FAST_MIN_AMAX);
            assert_eq!(quants_fast(&xb, id), quants_cast(&xb, id), "block {b}");
        }
    }

    proptest! {
        #[test]
        fn pack5_round_trips(l in proptest::array::uniform32(0u8..32)) {
            let mut y = [0u8; 22];
            pack5(&l, &mut y, 2);
            prop_assert_eq!(unpack5(&y, 2), l);
        }
    }
}
