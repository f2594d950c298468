//! Q4_K and Q6_K: super-blocks of 256 quants, read as eight [`LANES`] chunks each.
//!
//! Layouts: ggml/src/ggml-common.h `block_q4_K` (`d: f16`, `dmin: f16`, `scales: [u8; 12]`
//! unpacked as ggml/src/ggml-quants.c `get_scale_min_k4` does, `qs: [u8; 128]`: per 64
//! elements, 32 bytes holding the first 32 in low nibbles and the next 32 in high nibbles) and
//! `block_q6_K` (`ql: [u8; 128]`, `qh: [u8; 64]`, `scales: [i8; 16]`, `d: f16`). Weights are
//! computed as `quantizers/src/ggml/q4_k.rs` and `q6_k.rs` decode them.
//!
//! Each super-block is first decoded to 256 f32 on the stack (a store loop the vectoriser
//! handles well) and then multiplied in; decoding straight into the accumulation, as the
//! 32-element types do, came out as 4-lane gathers across the lane groups.

use super::{Acc, LANES, dispatch, f16_at, fold, mac};

const QK: usize = 256;
const CHUNKS: usize = QK / LANES;

const Q4_K_BYTES: usize = 144;
const Q4_K_SCALES: usize = 4;
const Q4_K_QS: usize = 16;

const Q6_K_BYTES: usize = 210;
const Q6_K_QH: usize = 128;
const Q6_K_SCALES: usize = 192;
const Q6_K_D: usize = 208;

/// The 6-bit scale and minimum of Q4_K sub-block `j` from the 12 packed bytes.
#[inline(always)]
fn scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Adds `x · w` for one decoded super-block, chunk by chunk into the lanes.
#[inline(always)]
fn mac_block(acc: &mut Acc, x: &[[f32; LANES]; CHUNKS], w: &[f32; QK]) {
    let (w, _) = w.as_chunks::<LANES>();
    for (x, w) in x.iter().zip(w) {
        mac(acc, x, |l| w[l]);
    }
}

#[inline(always)]
pub(super) fn q4_k_body(row: &[u8], x: &[f32]) -> f32 {
    let (blocks, _) = row.as_chunks::<Q4_K_BYTES>();
    let (xs, _) = x.as_chunks::<LANES>();
    let (xs, _) = xs.as_chunks::<CHUNKS>();
    let mut acc = Acc::default();
    let mut w = [0f32; QK];
    for (b, x) in blocks.iter().zip(xs) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales = &b[Q4_K_SCALES..Q4_K_QS];
        for (s, w) in w.as_chunks_mut::<LANES>().0.iter_mut().enumerate() {
            let (sc, m) = scale_min(s, scales);
            let (ds, ms) = (d * f32::from(sc), dmin * f32::from(m));
            let qs = &b[Q4_K_QS + 32 * (s / 2)..][..LANES];
            // Even sub-blocks are the low nibbles, odd ones the high.
            let shift = 4 * (s % 2);
            for (w, q) in w.iter_mut().zip(qs) {
                *w = ds * f32::from((q >> shift) & 0xf) - ms;
            }
        }
        mac_block(&mut acc, x, &w);
    }
    fold(acc)
}

dispatch! {
    /// `x ·` one Q4_K row.
    pub(super) fn q4_k(row: &[u8], x: &[f32]) -> f32 = q4_k_body;
}

#[inline(always)]
pub(super) fn q6_k_body(row: &[u8], x: &[f32]) -> f32 {
    let (blocks, _) = row.as_chunks::<Q6_K_BYTES>();
    let (xs, _) = x.as_chunks::<LANES>();
    let (xs, _) = xs.as_chunks::<CHUNKS>();
    let mut acc = Acc::default();
    let mut w = [0f32; QK];
    for (b, x) in blocks.iter().zip(xs) {
        let d = f16_at(b, Q6_K_D);
        for (c, w) in w.as_chunks_mut::<LANES>().0.iter_mut().enumerate() {
            // Elements 32c.. live in half `n`, quarter `g` of the 128-element layout: low
            // nibbles of `ql` for quarters 0-1, high for 2-3; bits 2g.. of `qh`.
            let (n, g) = (c / 4, c % 4);
            let ql = &b[64 * n + 32 * (g & 1)..][..LANES];
            let qh = &b[Q6_K_QH + 32 * n..][..LANES];
            let sc = |k: usize| d * f32::from(b[Q6_K_SCALES + 2 * c + k] as i8);
            let (ds0, ds1) = (sc(0), sc(1));
            let (low_shift, high_shift) = (4 * (g / 2), 2 * g);
            for (i, w) in w.iter_mut().enumerate() {
                let low = (ql[i] >> low_shift) & 0xf;
                let high = (qh[i] >> high_shift) & 3;
                let q = i32::from(low | (high << 4)) - 32;
                let ds = if i < 16 { ds0 } else { ds1 };
                *w = ds * q as f32;
            }
        }
        mac_block(&mut acc, x, &w);
    }
    fold(acc)
}

dispatch! {
    /// `x ·` one Q6_K row.
    pub(super) fn q6_k(row: &[u8], x: &[f32]) -> f32 = q6_k_body;
}
