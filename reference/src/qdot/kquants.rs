//! Q4_K and Q6_K: super-blocks of 256 quants, read as eight [`LANES`] chunks each.
//!
//! Layouts: ggml/src/ggml-common.h `block_q4_K` (`d: f16`, `dmin: f16`, `scales: [u8; 12]`
//! unpacked as ggml/src/ggml-quants.c `get_scale_min_k4` does, `qs: [u8; 128]`: per 64
//! elements, 32 bytes holding the first 32 in low nibbles and the next 32 in high nibbles) and
//! `block_q6_K` (`ql: [u8; 128]`, `qh: [u8; 64]`, `scales: [i8; 16]`, `d: f16`). Weights are
//! computed as `quantizers/src/ggml/q4_k.rs` and `q6_k.rs` decode them.

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

#[inline(always)]
pub(super) fn q4_k_body(row: &[u8], x: &[f32]) -> f32 {
    let (blocks, _) = row.as_chunks::<Q4_K_BYTES>();
    let (xs, _) = x.as_chunks::<LANES>();
    let mut acc = Acc::default();
    for (b, x) in blocks.iter().zip(xs.chunks_exact(CHUNKS)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales = &b[Q4_K_SCALES..Q4_K_QS];
        for (s, x) in x.iter().enumerate() {
            let (sc, m) = scale_min(s, scales);
            let (ds, ms) = (d * f32::from(sc), dmin * f32::from(m));
            let qs = &b[Q4_K_QS + 32 * (s / 2)..][..LANES];
            let high = s % 2 == 1;
            mac(&mut acc, x, |i| {
                let q = if high { qs[i] >> 4 } else { qs[i] & 0xf };
                ds * f32::from(q) - ms
            });
        }
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
    let mut acc = Acc::default();
    for (b, x) in blocks.iter().zip(xs.chunks_exact(CHUNKS)) {
        let d = f16_at(b, Q6_K_D);
        for (c, x) in x.iter().enumerate() {
            // Elements 32c.. live in half `n`, quarter `g` of the 128-element layout.
            let (n, g) = (c / 4, c % 4);
            let ql = &b[64 * n + 32 * (g & 1)..][..LANES];
            let qh = &b[Q6_K_QH + 32 * n..][..LANES];
            let sc = |k: usize| d * f32::from(b[Q6_K_SCALES + 2 * c + k] as i8);
            let (ds0, ds1) = (sc(0), sc(1));
            mac(&mut acc, x, |i| {
                let low = if g < 2 { ql[i] & 0xf } else { ql[i] >> 4 };
                let high = (qh[i] >> (2 * g)) & 3;
                let q = i32::from(low | (high << 4)) - 32;
                let ds = if i < 16 { ds0 } else { ds1 };
                ds * q as f32
            });
        }
    }
    fold(acc)
}

dispatch! {
    /// `x ·` one Q6_K row.
    pub(super) fn q6_k(row: &[u8], x: &[f32]) -> f32 = q6_k_body;
}
