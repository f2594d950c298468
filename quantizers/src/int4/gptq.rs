//! GPTQ (AutoGPTQ / GPTQModel) decoding: `qweight` `i32 [K / pf, N]` packed along the input
//! dim K (dim 0), `qzeros` `i32 [groups, N / pf]` packed along N, `scales [groups, N]`, optional
//! `g_idx i32 [K]` (the group of each input channel; permuted when `desc_act`).
//!
//! `W[n, k] = scales[g, n] * (q[k, n] - z)` with `g = g_idx[k]` (or `k / group`) and
//! `z = qzeros[g, n] + 1` for `checkpoint_format: "gptq"` (v1 stores zero - 1) or
//! `z = qzeros[g, n]` for `gptq_v2`. Computed as `f32(q - z) * scale` (one f32 rounding) and
//! returned in the Linear layout `[N, K]` (out x in).

use rayon::prelude::*;

use super::pack::{self, pack_factor};
use crate::{QuantError, Result};

/// How the zero points are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GptqFormat {
    /// `checkpoint_format: "gptq"`: stored zero point is the real one minus 1.
    V1,
    /// `checkpoint_format: "gptq_v2"`: stored as is.
    V2,
}

/// Shape and storage of one GPTQ Linear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GptqParams {
    /// 4 or 8.
    pub bits: u32,
    /// Input channels per group; `None` for `group_size: -1` (one group).
    pub group: Option<usize>,
    /// Zero-point convention.
    pub format: GptqFormat,
    /// Input features K.
    pub in_features: usize,
    /// Output features N.
    pub out_features: usize,
}

impl GptqParams {
    /// Number of groups when there is no `g_idx`.
    fn groups(&self) -> usize {
        match self.group {
            Some(g) => self.in_features.div_ceil(g.max(1)),
            None => 1,
        }
    }

    fn validate(&self) -> Result<()> {
        if !matches!(self.bits, 4 | 8) {
            return Err(QuantError::Parameter(format!("GPTQ bits {}", self.bits)));
        }
        let pf = pack_factor(self.bits);
        if !self.in_features.is_multiple_of(pf)
            || !self.out_features.is_multiple_of(pf)
            || self.group == Some(0)
        {
            return Err(QuantError::Parameter(format!(
                "GPTQ shape {}x{} with group {:?}",
                self.in_features, self.out_features, self.group
            )));
        }
        Ok(())
    }
}

/// The group of every input channel, from `g_idx` or `k / group`.
fn group_index(p: &GptqParams, g_idx: Option<&[i32]>, groups: usize) -> Result<Vec<usize>> {
    let Some(g_idx) = g_idx else {
        let g = p.group.unwrap_or(p.in_features).max(1);
        return Ok((0..p.in_features).map(|k| k / g).collect());
    };
    super::check_len("g_idx", Some(p.in_features), g_idx.len())?;
    g_idx
        .iter()
        .map(|&g| usize::try_from(g).ok().filter(|&g| g < groups))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| QuantError::Parameter(format!("g_idx outside 0..{groups}")))
}

/// Dequantizes one GPTQ Linear to `[out_features, in_features]`.
///
/// With `g_idx`, the group count is `scales.len() / out_features`.
pub fn dequantize_gptq(
    p: GptqParams,
    qweight: &[i32],
    qzeros: &[i32],
    scales: &[f32],
    g_idx: Option<&[i32]>,
) -> Result<Vec<f32>> {
    p.validate()?;
    let (k, n, pf) = (p.in_features, p.out_features, pack_factor(p.bits));
    let groups = if g_idx.is_some() {
        scales.len() / n.max(1)
    } else {
        p.groups()
    };
    super::check_len("qweight", (k / pf).checked_mul(n), qweight.len())?;
    super::check_len("qzeros", groups.checked_mul(n / pf), qzeros.len())?;
    super::check_len("scales", groups.checked_mul(n), scales.len())?;
    let gi = group_index(&p, g_idx, groups)?;
    let zeros = pack::unpack_dim1(qzeros, groups, n, p.bits);
    let codes = pack::unpack_dim0(qweight, k, n, p.bits);
    let bump = i32::from(p.format == GptqFormat::V1);
    let mut out = vec![0f32; n * k];
    if k == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(k).enumerate().for_each(|(col, row)| {
        for (kk, w) in row.iter_mut().enumerate() {
            let g = gi[kk];
            let z = i32::from(zeros[g * n + col]) + bump;
            *w = (i32::from(codes[kk * n + col]) - z) as f32 * scales[g * n + col];
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// K = 16, N = 8, group 8: hand-packed words.
    #[test]
    fn hand_packed_v1() {
        let p = GptqParams {
            bits: 4,
            group: Some(8),
            format: GptqFormat::V1,
            in_features: 16,
            out_features: 8,
        };
        // q[k, n] = k % 16 for n = 0, else 8.
        let mut qweight = vec![0x8888_8888u32 as i32; 2 * 8];
        qweight[0] = 0x7654_3210;
        qweight[8] = 0xFEDC_BA98u32 as i32;
        // Stored zero 7 everywhere (real zero 8).
        let qzeros = vec![0x7777_7777; 2];
        let mut scales = vec![1.0f32; 16];
        scales[8] = 0.5; // group 1, column 0
        let w = dequantize_gptq(p, &qweight, &qzeros, &scales, None).unwrap();
        let row0: Vec<f32> = (0..16)
            .map(|k| {
                if k < 8 {
                    k as f32 - 8.0
                } else {
                    (k as f32 - 8.0) * 0.5
                }
            })
            .collect();
        assert_eq!(&w[..16], &row0[..]);
        assert!(w[16..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn g_idx_selects_groups_and_is_checked() {
        let p = GptqParams {
            bits: 4,
            group: Some(8),
            format: GptqFormat::V2,
            in_features: 8,
            out_features: 8,
        };
        let qweight = vec![0x1111_1111; 8];
        let qzeros = vec![0, 0];
        let scales: Vec<f32> = (0..16).map(|i| if i < 8 { 1.0 } else { 2.0 }).collect();
        let g_idx = [1, 1, 1, 1, 0, 0, 0, 0];
        let w = dequantize_gptq(p, &qweight, &qzeros, &scales, Some(&g_idx)).unwrap();
        assert_eq!(&w[..8], &[2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0]);
        let bad = [2, 0, 0, 0, 0, 0, 0, 0];
        assert!(dequantize_gptq(p, &qweight, &qzeros, &scales, Some(&bad)).is_err());
    }
}
