//! AutoAWQ "GEMM" decoding: `qweight` `i32 [K, N / 8]` packed along N in the interleaved order
//! `[0, 2, 4, 6, 1, 3, 5, 7]` (slot `i` of a word holds column `AWQ_PACK_ORDER[i]`), `qzeros`
//! `i32 [K / G, N / 8]` with the same interleave, `scales [K / G, N]`.
//! `W[n, k] = (q[k, n] - z[g, n]) * scales[g, n]` with `g = k / G`, one f32 rounding, returned
//! as `[N, K]` (out x in). 4 bits only.

use rayon::prelude::*;

use super::pack::code;
use crate::{QuantError, Result};

/// Column held by each nibble slot of a packed word (AutoAWQ `AWQ_ORDER`).
#[cfg(test)]
const AWQ_PACK_ORDER: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];

/// Slot holding each column of a word (AutoAWQ `AWQ_REVERSE_ORDER`).
const AWQ_SLOT_OF_COLUMN: [usize; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// The 4-bit code of column `n` in a row of interleaved words.
fn awq_code(row: &[i32], n: usize) -> i32 {
    i32::from(code(row[n / 8], AWQ_SLOT_OF_COLUMN[n % 8], 4))
}

/// Dequantizes one AWQ GEMM Linear (`in_features` K, `out_features` N, group G) to `[N, K]`.
pub fn dequantize_awq(
    qweight: &[i32],
    qzeros: &[i32],
    scales: &[f32],
    in_features: usize,
    out_features: usize,
    group: usize,
) -> Result<Vec<f32>> {
    let (k, n) = (in_features, out_features);
    if !n.is_multiple_of(8) || group == 0 || !k.is_multiple_of(group) {
        return Err(QuantError::Parameter(format!(
            "AWQ shape {k}x{n} with group {group}"
        )));
    }
    let groups = k / group;
    super::check_len("qweight", k.checked_mul(n / 8), qweight.len())?;
    super::check_len("qzeros", groups.checked_mul(n / 8), qzeros.len())?;
    super::check_len("scales", groups.checked_mul(n), scales.len())?;
    let mut out = vec![0f32; n * k];
    if k == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(k).enumerate().for_each(|(col, row)| {
        for (kk, w) in row.iter_mut().enumerate() {
            let g = kk / group;
            let q = awq_code(&qweight[kk * (n / 8)..][..n / 8], col);
            let z = awq_code(&qzeros[g * (n / 8)..][..n / 8], col);
            *w = (q - z) as f32 * scales[g * n + col];
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_inverse() {
        for (slot, &col) in AWQ_PACK_ORDER.iter().enumerate() {
            assert_eq!(AWQ_SLOT_OF_COLUMN[col], slot);
        }
    }

    #[test]
    fn interleaved_columns() {
        // One input row, 8 columns; column c has code c + 1, packed in AWQ order.
        let word = AWQ_PACK_ORDER
            .iter()
            .enumerate()
            .fold(0u32, |w, (slot, &col)| w | ((col as u32 + 1) << (4 * slot)));
        let w = dequantize_awq(&[word as i32], &[0], &[1.0; 8], 1, 8, 1).unwrap();
        assert_eq!(w, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    }
}
