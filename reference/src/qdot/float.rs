//! BF16 and F16 rows, and DeepSeek's block FP8 (E4M3 codes, one f32 scale per 128 columns of
//! the row's 128-row block), read in place.
//!
//! Each weight is the value the decoders give — BF16 widened exactly, F16 as `half` converts
//! it, E4M3 as `wharf_quantizers::fp8` decodes it times its block's scale (one f32 multiply,
//! as `fp8::dequantize_blocks` computes it) — so each kernel equals decode-then-[`super::dense`]
//! bit for bit.

use super::{Acc, LANES, dispatch, f16_at, fold, mac};

/// An E4M3FN code as f32, computed (a table lookup would not vectorise): sign, then
/// `2^(e-7) * (1 + m/8)` for e > 0, `m * 2^-9` for e = 0, NaN for `S.1111.111`. Both values are
/// computed and one selected, so the lane loop has no branch.
#[inline(always)]
fn e4m3(b: u8) -> f32 {
    let b = u32::from(b);
    let (e, m) = ((b >> 3) & 0xf, b & 0x7);
    let normal = ((e + 120) << 23) | (m << 20);
    // Through i32: AVX2 converts signed integers only.
    let subnormal = ((m as i32) as f32 * (1.0 / 512.0)).to_bits();
    let bits = if e == 0 { subnormal } else { normal };
    let bits = if b & 0x7f == 0x7f { 0x7fc0_0000 } else { bits };
    f32::from_bits(((b & 0x80) << 24) | bits)
}

#[inline(always)]
fn bf16_row_body(row: &[u8], x: &[f32]) -> f32 {
    let n = (row.len() / 2).min(x.len());
    let (row, _) = row[..2 * n].as_chunks::<2>();
    let (wc, wt) = row.as_chunks::<LANES>();
    let (xc, xt) = x[..n].as_chunks::<LANES>();
    let w = |b: [u8; 2]| f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16);
    let mut acc = Acc::default();
    for (wb, x) in wc.iter().zip(xc) {
        // Widened into lanes first, as the FP8 codes below (0.35 -> 0.19 ns a weight).
        let d: [f32; LANES] = std::array::from_fn(|l| w(wb[l]));
        mac(&mut acc, x, |l| d[l]);
    }
    let tail = wt.iter().zip(xt).fold(0f32, |s, (b, x)| s + w(*b) * x);
    fold(acc) + tail
}

dispatch! {
    /// `x ·` a BF16 row stored as little-endian bytes.
    pub(super) fn bf16_row(row: &[u8], x: &[f32]) -> f32 = bf16_row_body;
}

#[inline(always)]
fn f16_row_body(row: &[u8], x: &[f32]) -> f32 {
    let n = (row.len() / 2).min(x.len());
    let row = &row[..2 * n];
    let (xc, xt) = x[..n].as_chunks::<LANES>();
    let mut acc = Acc::default();
    for (c, x) in xc.iter().enumerate() {
        mac(&mut acc, x, |l| f16_at(row, 2 * (c * LANES + l)));
    }
    let done = xc.len() * LANES;
    let tail = xt
        .iter()
        .enumerate()
        .fold(0f32, |s, (i, x)| s + f16_at(row, 2 * (done + i)) * x);
    fold(acc) + tail
}

dispatch! {
    /// `x ·` an F16 row stored as little-endian bytes.
    pub(super) fn f16_row(row: &[u8], x: &[f32]) -> f32 = f16_row_body;
}

#[inline(always)]
fn fp8_block_row_body(row: &[u8], scales: &[f32], width: usize, x: &[f32]) -> f32 {
    let n = row.len().min(x.len());
    let scale = |i: usize| scales.get(i / width.max(1)).copied().unwrap_or(f32::NAN);
    let (row, x) = (&row[..n], &x[..n]);
    let mut acc = Acc::default();
    // Chunks of 32 under one scale when blocks are whole chunks: a block at a time, so no
    // division per chunk (that alone took half the time).
    let whole = if width.is_multiple_of(LANES) && width > 0 {
        n / LANES * LANES
    } else {
        0
    };
    for (j, (wb, xb)) in row[..whole]
        .chunks(width)
        .zip(x[..whole].chunks(width))
        .enumerate()
    {
        let s = scales.get(j).copied().unwrap_or(f32::NAN);
        for (w, x) in wb
            .as_chunks::<LANES>()
            .0
            .iter()
            .zip(xb.as_chunks::<LANES>().0)
        {
            // Decoded into lanes first: inside the multiply's closure it did not vectorise.
            let d: [f32; LANES] = std::array::from_fn(|l| e4m3(w[l]));
            mac(&mut acc, x, |l| d[l] * s);
        }
    }
    let (wc, wt) = row[whole..].as_chunks::<LANES>();
    let (xc, xt) = x[whole..].as_chunks::<LANES>();
    for (c, (w, x)) in wc.iter().zip(xc).enumerate() {
        let d: [f32; LANES] = std::array::from_fn(|l| e4m3(w[l]));
        mac(&mut acc, x, |l| d[l] * scale(whole + c * LANES + l));
    }
    let done = whole + wc.len() * LANES;
    let tail = wt
        .iter()
        .zip(xt)
        .enumerate()
        .fold(0f32, |s, (i, (w, x))| s + e4m3(*w) * scale(done + i) * x);
    fold(acc) + tail
}

dispatch! {
    /// `x ·` one row of E4M3 codes whose column block `j` (of `width` columns) has scale
    /// `scales[j]`.
    pub fn fp8_block_row(row: &[u8], scales: &[f32], width: usize, x: &[f32]) -> f32 =
        fp8_block_row_body;
}

#[cfg(test)]
mod tests {
    use wharf_quantizers::fp8::{Fp8Format, dequantize_blocks};

    use super::*;
    use crate::qdot::dense;

    #[test]
    fn every_e4m3_code_decodes_as_the_table() {
        let table = Fp8Format::E4M3.table();
        for b in 0..=255u8 {
            let (ours, theirs) = (e4m3(b), table[usize::from(b)]);
            assert!(
                ours.to_bits() == theirs.to_bits() || ours.is_nan() && theirs.is_nan(),
                "{b:#x}"
            );
        }
    }

    /// Random codes (NaN codes excluded) and scales, row lengths with partial blocks and tails.
    #[test]
    fn block_fp8_rows_equal_dequantize_then_dense() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for cols in [32usize, 128, 200, 256, 577, 7168] {
            let rows = 3;
            let codes: Vec<u8> = (0..rows * cols)
                .map(|_| (next() as u8) & 0xf7) // bit 3 clear: never S.1111.111
                .collect();
            let grid = cols.div_ceil(128);
            let scales: Vec<f32> = (0..grid)
                .map(|_| (next() >> 40) as f32 * 1e-9 + 1e-4)
                .collect();
            let x: Vec<f32> = (0..cols)
                .map(|_| (next() >> 40) as f32 * 1e-7 - 0.8)
                .collect();
            let w = dequantize_blocks(Fp8Format::E4M3, &codes, &scales, rows, cols, (128, 128))
                .unwrap();
            for r in 0..rows {
                let row = &codes[r * cols..(r + 1) * cols];
                let want = dense(&w[r * cols..(r + 1) * cols], &x);
                let got = fp8_block_row(row, &scales, 128, &x);
                assert_eq!(got.to_bits(), want.to_bits(), "cols {cols} row {r}");
                let base = fp8_block_row_body(row, &scales, 128, &x);
                assert_eq!(
                    base.to_bits(),
                    want.to_bits(),
                    "baseline build, cols {cols}"
                );
            }
        }
    }

    #[test]
    fn half_rows_equal_decode_then_dense() {
        let x: Vec<f32> = (0..300).map(|i| (i as f32 * 0.37).sin()).collect();
        let vals: Vec<f32> = (0..300).map(|i| (i as f32 * 0.11).cos() * 3.0).collect();
        let bf: Vec<u8> = vals
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        let h: Vec<u8> = vals
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let wb: Vec<f32> = vals
            .iter()
            .map(|v| half::bf16::from_f32(*v).to_f32())
            .collect();
        let wh: Vec<f32> = vals
            .iter()
            .map(|v| half::f16::from_f32(*v).to_f32())
            .collect();
        for n in [31, 32, 64, 300] {
            assert_eq!(
                bf16_row(&bf[..2 * n], &x).to_bits(),
                dense(&wb[..n], &x).to_bits()
            );
            assert_eq!(
                f16_row(&h[..2 * n], &x).to_bits(),
                dense(&wh[..n], &x).to_bits()
            );
            assert_eq!(
                bf16_row_body(&bf[..2 * n], &x).to_bits(),
                dense(&wb[..n], &x).to_bits()
            );
            assert_eq!(
                f16_row_body(&h[..2 * n], &x).to_bits(),
                dense(&wh[..n], &x).to_bits()
            );
        }
    }
}
