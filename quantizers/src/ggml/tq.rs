//! TQ1_0 and TQ2_0: ternary super-blocks of 256 values in {-1, 0, 1} times one f16 scale
//! (1.6875 and 2.0625 bits per weight).
//!
//! layout: ggml/src/ggml-common.h `block_tq1_0` (`qs: [u8; 48]` five trits per byte as a
//! base-3 fraction of 256, `qh: [u8; 4]` four trits per byte, `d: f16`) and `block_tq2_0`
//! (`qs: [u8; 64]` four 2-bit codes per byte, `d: f16`).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_tq1_0_ref` / `quantize_row_tq2_0_ref`
//! (`quantize_tq*_0` ignore an importance matrix).

use super::kquant_util::{get_f16, put_f16};

const QK: usize = 256;
const TQ1_BYTES: usize = 54;
const TQ2_BYTES: usize = 66;

/// `(scale, 1 / scale)` with `scale = max |x|`, the scale stored as f16.
fn scale(x: &[f32; QK], d_out: &mut [u8]) -> f32 {
    let d = x
        .iter()
        .fold(0.0f32, |a, v| if a > v.abs() { a } else { v.abs() });
    put_f16(d_out, d);
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// Trit code 0, 1, 2 for -1, 0, 1.
fn trit(v: f32, id: f32) -> u8 {
    ((v * id).round() as i32 + 1) as u8
}

/// Packs trits (most significant first) into a byte holding the base-3 fraction of 256.
fn pack_trits(trits: impl Iterator<Item = u8>, pad: bool) -> u8 {
    let mut q = trits.fold(0u8, |q, t| q.wrapping_mul(3).wrapping_add(t));
    if pad {
        q = q.wrapping_mul(3);
    }
    (u16::from(q) * 256).div_ceil(243) as u8
}

/// Quantizes one TQ1_0 row; the importance matrix is unused.
pub(super) fn quantize_row_tq1(x: &[f32], _imatrix: Option<&[f32]>, y: &mut [u8]) {
    let (xb, _) = x.as_chunks::<QK>();
    let (yb, _) = y.as_chunks_mut::<TQ1_BYTES>();
    for (x, y) in xb.iter().zip(yb) {
        let id = scale(x, &mut y[52..]);
        for m in 0..32 {
            y[m] = pack_trits((0..5).map(|n| trit(x[m + 32 * n], id)), false);
        }
        for m in 0..16 {
            y[32 + m] = pack_trits((0..5).map(|n| trit(x[160 + m + 16 * n], id)), false);
        }
        for j in 0..4 {
            y[48 + j] = pack_trits((0..4).map(|m| trit(x[240 + j + 4 * m], id)), true);
        }
    }
}

/// Trit `n` (most significant first) of a packed byte, as -1, 0 or 1.
fn unpack_trit(byte: u8, n: u32) -> f32 {
    let q = byte.wrapping_mul(3u8.pow(n));
    ((u16::from(q) * 3) >> 8) as f32 - 1.0
}

/// Decodes whole TQ1_0 super-blocks.
pub(super) fn dequantize_tq1(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<TQ1_BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = get_f16(&b[52..]);
        for (e, o) in y.iter_mut().enumerate() {
            let (byte, n) = match e {
                0..160 => (b[e % 32], e / 32),
                160..240 => (b[32 + (e - 160) % 16], (e - 160) / 16),
                _ => (b[48 + (e - 240) % 4], (e - 240) / 4),
            };
            *o = unpack_trit(byte, n as u32) * d;
        }
    }
}

/// Quantizes one TQ2_0 row; the importance matrix is unused.
pub(super) fn quantize_row_tq2(x: &[f32], _imatrix: Option<&[f32]>, y: &mut [u8]) {
    let (xb, _) = x.as_chunks::<QK>();
    let (yb, _) = y.as_chunks_mut::<TQ2_BYTES>();
    for (x, y) in xb.iter().zip(yb) {
        let id = scale(x, &mut y[64..]);
        for (c, xs) in x.chunks_exact(128).enumerate() {
            for m in 0..32 {
                y[32 * c + m] =
                    (0..4).fold(0u8, |q, n| q | ((trit(xs[m + 32 * n], id) & 3) << (2 * n)));
            }
        }
    }
}

/// Decodes whole TQ2_0 super-blocks.
pub(super) fn dequantize_tq2(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<TQ2_BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = get_f16(&b[64..]);
        for (e, o) in y.iter_mut().enumerate() {
            let q = (b[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3;
            *o = (f32::from(q) - 1.0) * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ternary_values_round_trip() {
        let x: Vec<f32> = (0..QK).map(|i| [0.5f32, -0.5, 0.0][(i * 7) % 3]).collect();
        let (mut q1, mut q2) = ([0u8; TQ1_BYTES], [0u8; TQ2_BYTES]);
        quantize_row_tq1(&x, None, &mut q1);
        quantize_row_tq2(&x, None, &mut q2);
        let (mut y1, mut y2) = ([0f32; QK], [0f32; QK]);
        dequantize_tq1(&q1, &mut y1);
        dequantize_tq2(&q2, &mut y2);
        assert_eq!(&y1[..], &x[..]);
        assert_eq!(&y2[..], &x[..]);
    }
}
