//! Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1: blocks of 32 quants under an f16 scale (and minimum), one
//! block per [`LANES`] chunk.
//!
//! Layouts: ggml/src/ggml-common.h `block_q8_0` (`d: f16`, `qs: [i8; 32]`), `block_q4_0`
//! (`d: f16`, `qs: [u8; 16]`, element `j` in the low nibble of byte `j`, element `j + 16` in
//! its high nibble), `block_q4_1` (`d, m: f16`, then `qs` as Q4_0), `block_q5_0` (`d: f16`,
//! `qh: u32` little-endian holding element `j`'s fifth bit at bit `j`, then `qs` as Q4_0) and
//! `block_q5_1` (`d, m: f16`, then as Q5_0). Weights are computed as in
//! `quantizers/src/ggml/{q8_0,q4_0,q4_1,q5_0,q5_1}.rs`: `f32(q - offset) * d` or `f32(q) * d + m`.

use super::{Acc, LANES, dispatch, f16_at, fold, mac};

const Q8_0_BYTES: usize = 34;
const Q4_0_BYTES: usize = 18;
const Q4_1_BYTES: usize = 20;
const Q5_0_BYTES: usize = 22;
const Q5_1_BYTES: usize = 24;

/// The 4-bit quant of element `j` of a block whose 16 nibble bytes start at `qs`.
#[inline(always)]
fn nibble(b: &[u8], qs: usize, j: usize) -> u8 {
    let byte = b[qs + j % 16];
    if j < 16 { byte & 0xf } else { byte >> 4 }
}

/// The 5-bit quant of element `j` of a block whose `qh` word starts at `qh` (nibbles follow).
#[inline(always)]
fn five_bits(b: &[u8], qh: usize, j: usize) -> u8 {
    let high = (u32::from_le_bytes([b[qh], b[qh + 1], b[qh + 2], b[qh + 3]]) >> j) & 1;
    nibble(b, qh + 4, j) | ((high as u8) << 4)
}

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
        mac(&mut acc, x, |j| (i32::from(nibble(b, 2, j)) - 8) as f32 * d);
    }
    fold(acc)
}

dispatch! {
    /// `x ·` one Q4_0 row.
    pub(super) fn q4_0(row: &[u8], x: &[f32]) -> f32 = q4_0_body;
}

#[inline(always)]
pub(super) fn q4_1_body(row: &[u8], x: &[f32]) -> f32 {
    let (blocks, _) = row.as_chunks::<Q4_1_BYTES>();
    let (xs, _) = x.as_chunks::<LANES>();
    let mut acc = Acc::default();
    for (b, x) in blocks.iter().zip(xs) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        mac(&mut acc, x, |j| f32::from(nibble(b, 4, j)) * d + m);
    }
    fold(acc)
}

dispatch! {
    /// `x ·` one Q4_1 row.
    pub(super) fn q4_1(row: &[u8], x: &[f32]) -> f32 = q4_1_body;
}

#[inline(always)]
pub(super) fn q5_0_body(row: &[u8], x: &[f32]) -> f32 {
    let (blocks, _) = row.as_chunks::<Q5_0_BYTES>();
    let (xs, _) = x.as_chunks::<LANES>();
    let mut acc = Acc::default();
    for (b, x) in blocks.iter().zip(xs) {
        let d = f16_at(b, 0);
        mac(&mut acc, x, |j| {
            (i32::from(five_bits(b, 2, j)) - 16) as f32 * d
        });
    }
    fold(acc)
}

dispatch! {
    /// `x ·` one Q5_0 row.
    pub(super) fn q5_0(row: &[u8], x: &[f32]) -> f32 = q5_0_body;
}

#[inline(always)]
pub(super) fn q5_1_body(row: &[u8], x: &[f32]) -> f32 {
    let (blocks, _) = row.as_chunks::<Q5_1_BYTES>();
    let (xs, _) = x.as_chunks::<LANES>();
    let mut acc = Acc::default();
    for (b, x) in blocks.iter().zip(xs) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        mac(&mut acc, x, |j| f32::from(five_bits(b, 4, j)) * d + m);
    }
    fold(acc)
}

dispatch! {
    /// `x ·` one Q5_1 row.
    pub(super) fn q5_1(row: &[u8], x: &[f32]) -> f32 = q5_1_body;
}
