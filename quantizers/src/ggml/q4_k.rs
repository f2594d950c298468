//! Q4_K: super-blocks of 256 4-bit quants in 8 sub-blocks of 32, each with a 6-bit scale and
//! 6-bit minimum, under f16 super-scales `d` and `dmin` (4.5 bits per weight).
//!
//! layout: ggml/src/ggml-common.h `block_q4_K` (`d: f16`, `dmin: f16`, `scales: [u8; 12]`
//! packed as `get_scale_min_k4` reads them, `qs: [u8; 128]`: per 64 elements, 32 bytes with
//! the first 32 in low nibbles and the next 32 in high nibbles).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_q4_K_ref`; with an importance matrix
//! `quantize_row_q4_K_impl`.

use super::imatrix_util::{QKX3, make_qp_quants, sum_squares, weights};
use super::kquant_lanes::make_qkx_quants_x8;
use super::kquant_util::{
    QkxParams, get_f16, nearest_int, pack_scale_min_k4, put_f16, scale_min_k4,
};

const QK: usize = 256;
const BYTES: usize = 144;
const QS: usize = 16;

/// Quantizes one row (a whole number of super-blocks).
pub(super) fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    let (xb, _) = x.as_chunks::<QK>();
    let (yb, _) = y.as_chunks_mut::<BYTES>();
    for (i, (x, y)) in xb.iter().zip(yb).enumerate() {
        let mut l = [0u8; QK];
        match imatrix {
            None => fit_scales_ref(x, 15, &mut l, y),
            Some(im) => fit_scales_weighted(x, 15, &im[i * QK..(i + 1) * QK], &mut l, y),
        }
        requantize(x, 15, &y[..QS], &mut l);
        for (n, lq) in l.chunks_exact(64).enumerate() {
            for i in 0..32 {
                y[QS + 32 * n + i] = lq[i] | (lq[i + 32] << 4);
            }
        }
    }
}

/// Reference sub-block fit shared with Q5_K: per-sub-block `make_qkx2_quants`, then the 6-bit
/// scales and mins relative to their maxima. Writes `head[..16]` (d, dmin, scales).
pub(super) fn fit_scales_ref(x: &[f32; QK], nmax: i32, l: &mut [u8; QK], head: &mut [u8]) {
    let p = match nmax {
        15 => QkxParams {
            nmax,
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        },
        _ => QkxParams {
            nmax,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: false,
        },
    };
    let mut w = [0f32; QK];
    for (ws, xs) in w.chunks_exact_mut(32).zip(x.chunks_exact(32)) {
        let av_x = (sum_squares(xs) / 32.0).sqrt();
        ws.iter_mut().zip(xs).for_each(|(w, v)| *w = av_x + v.abs());
    }
    let (scales, mins) = make_qkx_quants_x8(&p, x, &w, l);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for (&s, &m) in scales.iter().zip(&mins) {
        max_scale = if s > max_scale { s } else { max_scale };
        max_min = if m > max_min { m } else { max_min };
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        pack_scale_min_k4(j, ls, lm, &mut head[4..16]);
    }
    put_f16(&mut head[..2], max_scale / 63.0);
    put_f16(&mut head[2..4], max_min / 63.0);
}

/// Importance-weighted sub-block fit shared with Q5_K (`make_qkx3_quants` per sub-block, then
/// `make_qp_quants` over the scales and mins). Q5_K caps the 6-bit values at 63; Q4_K does not.
pub(super) fn fit_scales_weighted(
    x: &[f32; QK],
    nmax: i32,
    qw: &[f32],
    l: &mut [u8; QK],
    head: &mut [u8],
) {
    let sigma2 = 2.0 * sum_squares(x) / QK as f32;
    let p = QkxParams { nmax, ..QKX3 };
    let (mut w, mut sw) = ([0f32; QK], [0f32; 8]);
    for (j, (ws, xs)) in w.chunks_exact_mut(32).zip(x.chunks_exact(32)).enumerate() {
        ws.copy_from_slice(&weights::<32>(xs, &qw[32 * j..], sigma2));
        sw[j] = ws.iter().fold(0.0f32, |s, &v| s + v);
    }
    let (scales, mins) = make_qkx_quants_x8(&p, x, &w, l);
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
    let cap = if nmax == 31 { 63 } else { u8::MAX };
    for j in 0..8 {
        pack_scale_min_k4(j, ls[j].min(cap), lm[j].min(cap), &mut head[4..16]);
    }
    put_f16(&mut head[..2], d_block);
    put_f16(&mut head[2..4], m_block);
}

/// Recomputes the quants from the stored (f16, 6-bit) scales and mins; sub-blocks whose scale
/// is zero keep the quants of the fit.
pub(super) fn requantize(x: &[f32; QK], nmax: i32, head: &[u8], l: &mut [u8; QK]) {
    let (d_all, m_all) = (get_f16(head), get_f16(&head[2..]));
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &head[4..16]);
        let d = d_all * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = m_all * f32::from(m);
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest_int((x[i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
}

/// Per-sub-block `(scale, min)` of a Q4_K/Q5_K block head.
pub(super) fn sub_scales(head: &[u8]) -> [(f32, f32); 8] {
    let (d, min) = (get_f16(head), get_f16(&head[2..]));
    std::array::from_fn(|j| {
        let (sc, m) = scale_min_k4(j, &head[4..16]);
        (d * f32::from(sc), min * f32::from(m))
    })
}

/// Decodes whole super-blocks.
pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let sub = sub_scales(b);
        for (e, o) in y.iter_mut().enumerate() {
            let byte = b[QS + 32 * (e / 64) + e % 32];
            let q = if e % 64 < 32 { byte & 0xf } else { byte >> 4 };
            let (d, m) = sub[e / 32];
            *o = d * f32::from(q) - m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_error_bound, sample};
    use wharf_core::DType;

    #[test]
    fn q4_k_error_is_bounded() {
        check_error_bound(DType::Q4K, &sample(2048, 9), |amax| amax * 2.0 / 15.0);
    }
}
