//! Packing of 4- or 8-bit unsigned codes into `i32` words, LSB first: the code of index `i`
//! within a word sits at bits `bits * (i % (32 / bits))`. Along dim 1 (compressed-tensors
//! `weight_packed`, GPTQ `qzeros`) a row `[cols]` becomes `[ceil(cols / pf)]`; along dim 0
//! (compressed-tensors `weight_zero_point`, GPTQ `qweight`) a matrix `[rows, cols]` becomes
//! `[ceil(rows / pf), cols]`. Missing codes are zero.

use rayon::prelude::*;

/// Codes per 32-bit word.
pub(super) const fn pack_factor(bits: u32) -> usize {
    (32 / bits) as usize
}

/// Packs a row-major `rows x cols` matrix of codes along dim 1.
pub(super) fn pack_dim1(codes: &[u8], cols: usize, bits: u32) -> Vec<i32> {
    let pf = pack_factor(bits);
    let words_per_row = cols.div_ceil(pf);
    let rows = codes.len() / cols.max(1);
    let mut out = vec![0i32; rows * words_per_row];
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(words_per_row.max(1))
        .zip(codes.par_chunks(cols))
        .for_each(|(dst, row)| {
            for (word, chunk) in dst.iter_mut().zip(row.chunks(pf)) {
                *word = pack_word(chunk.iter().copied(), bits);
            }
        });
    out
}

/// Packs a row-major `rows x cols` matrix of codes along dim 0.
pub(super) fn pack_dim0(codes: &[u8], cols: usize, bits: u32) -> Vec<i32> {
    let pf = pack_factor(bits);
    let rows = codes.len() / cols.max(1);
    let mut out = vec![0i32; rows.div_ceil(pf) * cols];
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(cols)
        .zip(codes.par_chunks(pf * cols))
        .for_each(|(dst, band)| {
            for (c, word) in dst.iter_mut().enumerate() {
                *word = pack_word(band.chunks(cols).map(|row| row[c]), bits);
            }
        });
    out
}

/// One word from up to `32 / bits` codes.
fn pack_word(codes: impl Iterator<Item = u8>, bits: u32) -> i32 {
    let mut w = 0u32;
    for (i, code) in codes.enumerate() {
        w |= u32::from(code) << (bits as usize * i);
    }
    w as i32
}

/// Code `i` (`0..32 / bits`) of a word.
pub(super) fn code(word: i32, i: usize, bits: u32) -> u8 {
    let mask = (1u32 << bits) - 1;
    ((word as u32 >> (bits as usize * i)) & mask) as u8
}

/// Unpacks dim-1-packed words back to a `rows x cols` matrix of codes.
pub(super) fn unpack_dim1(words: &[i32], rows: usize, cols: usize, bits: u32) -> Vec<u8> {
    let pf = pack_factor(bits);
    let wpr = cols.div_ceil(pf);
    let mut out = vec![0u8; rows * cols];
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(cols)
        .zip(words.par_chunks(wpr))
        .for_each(|(row, src)| {
            for (c, v) in row.iter_mut().enumerate() {
                *v = code(src[c / pf], c % pf, bits);
            }
        });
    out
}

/// Unpacks dim-0-packed words back to a `rows x cols` matrix of codes.
pub(super) fn unpack_dim0(words: &[i32], rows: usize, cols: usize, bits: u32) -> Vec<u8> {
    let pf = pack_factor(bits);
    let mut out = vec![0u8; rows * cols];
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(cols).enumerate().for_each(|(r, row)| {
        let src = &words[(r / pf) * cols..][..cols];
        for (v, &w) in row.iter_mut().zip(src) {
            *v = code(w, r % pf, bits);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dim1_element_i_at_bits_4i() {
        let codes: Vec<u8> = (0..10).collect(); // one row, 10 codes -> 2 words
        let w = pack_dim1(&codes, 10, 4);
        assert_eq!(w, vec![0x7654_3210, 0x98]);
        assert_eq!(unpack_dim1(&w, 1, 10, 4), codes);
    }

    #[test]
    fn dim0_packs_rows() {
        // 9 rows x 2 cols: rows 0..8 in word row 0, row 8 alone in word row 1.
        let codes: Vec<u8> = (0..18).map(|i| (i % 16) as u8).collect();
        let w = pack_dim0(&codes, 2, 4);
        assert_eq!(w.len(), 4);
        assert_eq!(code(w[1], 3, 4), codes[3 * 2 + 1]);
        assert_eq!(unpack_dim0(&w, 9, 2, 4), codes);
    }

    #[test]
    fn eight_bit_words() {
        let codes = [1u8, 2, 3, 255];
        assert_eq!(pack_dim1(&codes, 4, 8), vec![0xFF03_0201u32 as i32]);
    }
}
