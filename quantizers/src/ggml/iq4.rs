//! IQ4_NL and IQ4_XS decoding: 4-bit codes into the non-linear `kvalues_iq4nl` grid.
//!
//! layout: ggml/src/ggml-common.h `block_iq4_nl` (`d: f16`, `qs: [u8; 16]`, element `j` low
//! nibble, `j + 16` high nibble) and `block_iq4_xs` (`d: f16`, `scales_h: u16`,
//! `scales_l: [u8; 4]`, `qs: [u8; 128]`; sub-block `ib` has the 6-bit scale
//! `scales_l` nibble `ib` | (bits `2 ib..2 ib + 2` of `scales_h`) << 4, offset by 32).
//! decoder: ggml/src/ggml-quants.c `dequantize_row_iq4_nl` / `dequantize_row_iq4_xs`.

use super::kquant_util::get_f16;

/// The IQ4 grid (ggml-common.h `kvalues_iq4nl`).
const KVALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Decodes 16 bytes of codes (32 values, low nibbles first) scaled by `d`.
fn decode32(qs: &[u8], d: f32, y: &mut [f32]) {
    for j in 0..16 {
        y[j] = d * f32::from(KVALUES[usize::from(qs[j] & 0xf)]);
        y[j + 16] = d * f32::from(KVALUES[usize::from(qs[j] >> 4)]);
    }
}

/// Decodes whole IQ4_NL blocks.
pub(super) fn dequantize_nl(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<18>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(32)) {
        decode32(&b[2..], get_f16(b), y);
    }
}

/// Decodes whole IQ4_XS super-blocks.
pub(super) fn dequantize_xs(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<136>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(256)) {
        let d = get_f16(b);
        let scales_h = u16::from_le_bytes([b[2], b[3]]);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let low = (b[4 + ib / 2] >> (4 * (ib % 2))) & 0xf;
            let high = ((scales_h >> (2 * ib)) & 3) as u8;
            let dl = d * (i32::from(low | (high << 4)) - 32) as f32;
            decode32(&b[8 + 16 * ib..], dl, y);
        }
    }
}
