//! Q8_0: blocks of 32 signed 8-bit quants sharing one f16 scale (8.5 bits per weight).
//!
//! layout: ggml/src/ggml-common.h `block_q8_0` (`d: f16`, `qs: [i8; 32]`).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_q8_0_ref`; `quantize_q8_0` ignores an
//! importance matrix, and so does this codec.

use super::kquant_util::{get_f16, put_f16, round_away};
use super::small_int::{FAST_MIN_AMAX, low_byte, round_away_small};
use crate::reduce::abs_max;

const QK: usize = 32;
const BYTES: usize = 34;

/// Quantizes one row (a whole number of blocks); the importance matrix is unused.
pub(super) fn quantize_row(x: &[f32], _imatrix: Option<&[f32]>, y: &mut [u8]) {
    let (xb, _) = x.as_chunks::<QK>();
    let (yb, _) = y.as_chunks_mut::<BYTES>();
    for (x, y) in xb.iter().zip(yb) {
        quantize_block(x, y);
    }
}

fn quantize_block(x: &[f32; QK], y: &mut [u8; BYTES]) {
    let amax = abs_max(x);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(&mut y[..2], d);
    let q = match amax >= FAST_MIN_AMAX {
        true => quants_fast(x, id),
        false => quants_cast(x, id),
    };
    y[2..].copy_from_slice(&q);
}

/// C's `roundf(x * id)` stored as `int8_t`, per element.
fn quants_cast(x: &[f32; QK], id: f32) -> [u8; QK] {
    std::array::from_fn(|j| round_away(x[j] * id) as i8 as u8)
}

/// [`quants_cast`] when `|x * id| <= 127` (within rounding).
fn quants_fast(x: &[f32; QK], id: f32) -> [u8; QK] {
    std::array::from_fn(|j| low_byte(round_away_small(x[j] * id)))
}

/// Decodes whole blocks.
pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = get_f16(b);
        for (o, &q) in y.iter_mut().zip(&b[2..]) {
            *o = f32::from(q as i8) * d;
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
        let x = sample(64 * 1024, 13);
        let scales = [1.0, 1e-3, 1e-20, 3e4];
        for (b, xb) in x.as_chunks::<QK>().0.iter().enumerate() {
            let xb = xb.map(|v| v * scales[b % 4]);
            let amax = abs_max(&xb);
            let id = 1.0 / (amax / 127.0);
            assert!(amax >= FAST_MIN_AMAX);
            assert_eq!(quants_fast(&xb, id), quants_cast(&xb, id), "block {b}");
        }
    }

    #[test]
    fn q8_0_error_is_within_half_a_step() {
        check_error_bound(DType::Q8_0, &sample(1024, 3), |amax| {
            amax / 127.0 * 0.5 + amax * 2e-3
        });
    }
}
