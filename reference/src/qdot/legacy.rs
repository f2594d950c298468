//! Q8_0 and Q4_0: blocks of 32 quants under one f16 scale, one block per [`LANES`] chunk.
//!
//! Layouts: ggml/src/ggml-common.h `block_q8_0` (`d: f16`, `qs: [i8; 32]`) and `block_q4_0`
//! (`d: f16`, `qs: [u8; 16]`, element `j` in the low nibble of byte `j`, element `j + 16` in
//! its high nibble). Weights are `f32(q) * d` as in `quantizers/src/ggml/q8_0.rs` and `q4_0.rs`.

use super::{Acc, LANES, dispatch, f16_at, fold, mac};

const Q8_0_BYTES: usize = 34;
const Q4_0_BYTES: usize = 18;

#[inline(always)]
pub(super) fn q8_0_body(row: &[u8], x: &[f32]) -> f32 {
    let (blocks, _) = row.as_chunks::<Q8_0_BYTES>();
    let (xs, _) = x.as_chunks::<LANES>();
    let mut acc = Acc::default();
    for (b, x) in blocks.iter().zip(xs) {
        let d = f16_at(b, 0);
        mac(&mut acc, x, |j| f32::from(b[2 + j] as i8) * d);
    }
    fold(acc)
}

dispatch! {
    /// `x ·` one Q8_0 row.
    pub(super) fn q8_0(row: &[u8], x: &[f32]) -> f32 = q8_0_body;
}

#[inline(always)]
pub(super) fn q4_0_body(row: &[u8], x: &[f32]) -> f32 {
    let (blocks, _) = row.as_chunks::<Q4_0_BYTES>();
    let (xs, _) = x.as_chunks::<LANES>();
    let mut acc = Acc::default();
    for (b, x) in blocks.iter().zip(xs) {
        let d = f16_at(b, 0);
        mac(&mut acc, x, |j| {
            let byte = b[2 + j % 16];
            let q = if j < 16 { byte & 0xf } else { byte >> 4 };
            (i32::from(q) - 8) as f32 * d
        });
    }
    fold(acc)
}

dispatch! {
    /// `x ·` one Q4_0 row.
    pub(super) fn q4_0(row: &[u8], x: &[f32]) -> f32 = q4_0_body;
}
