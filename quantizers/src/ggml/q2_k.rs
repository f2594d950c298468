//! Q2_K: super-blocks of 256 2-bit quants in 16 sub-blocks, each with a 4-bit scale and 4-bit
//! minimum, under f16 super-scales `d` and `dmin` (2.625 bits per weight).
//!
//! layout: ggml/src/ggml-common.h `block_q2_K` (`scales: [u8; 16]` scale in the low nibble and
//! min in the high nibble, `qs: [u8; 64]` 2-bit quants (per 128 elements, byte `l` holds
//! elements `l`, `l+32`, `l+64`, `l+96`), `d: f16`, `dmin: f16`).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_q2_K_ref`; with an importance matrix
//! `quantize_row_q2_K_impl`.

use super::imatrix_util::{QKX3, make_qp_quants, sum_squares, weights};
use super::kquant_lanes::make_qkx_quants_x8;
use super::kquant_util::{QkxParams, f16_round, get_f16, nearest_int, pack_2bit, put_f16};

const QK: usize = 256;
const BYTES: usize = 84;
const QS: usize = 16;
const D: usize = 80;
const DMIN: usize = 82;

/// Quantizes one row (a whole number of super-blocks).
pub(super) fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    let (xb, _) = x.as_chunks::<QK>();
    let (yb, _) = y.as_chunks_mut::<BYTES>();
    for (i, (x, y)) in xb.iter().zip(yb).enumerate() {
        let mut l = [0u8; QK];
        let (d, dmin) = match imatrix {
            None => fit_scales_ref(x, &mut l, y),
            Some(im) => fit_scales_weighted(x, &im[i * QK..(i + 1) * QK], &mut l, y),
        };
        requantize(x, y, d, dmin, &mut l);
        pack_2bit(&l, &mut y[QS..D]);
    }
}

/// Fits the sub-blocks with `make_qkx2_quants`, stores the scales and super-scales, and
/// returns the super-scales as re-read from f16.
fn fit_scales_ref(x: &[f32; QK], l: &mut [u8; QK], y: &mut [u8; BYTES]) -> (f32, f32) {
    let p = QkxParams {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
    let w: [f32; QK] = std::array::from_fn(|i| x[i].abs());
    // Sixteen sub-blocks of 16: two searches of eight.
    for (h, (xs, ls)) in x.chunks_exact(128).zip(l.chunks_exact_mut(128)).enumerate() {
        let (s, m) = make_qkx_quants_x8(&p, xs, &w[128 * h..128 * h + 128], ls);
        scales[8 * h..8 * h + 8].copy_from_slice(&s);
        mins[8 * h..8 * h + 8].copy_from_slice(&m);
    }
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for (&s, &m) in scales.iter().zip(&mins) {
        max_scale = if s > max_scale { s } else { max_scale };
        max_min = if m > max_min { m } else { max_min };
    }
    if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for (s, &v) in y[..QS].iter_mut().zip(&scales) {
            *s = nearest_int(iscale * v) as u8;
        }
        put_f16(&mut y[D..], max_scale / 15.0);
    } else {
        y[..QS].fill(0);
        put_f16(&mut y[D..], 0.0);
    }
    if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for (s, &v) in y[..QS].iter_mut().zip(&mins) {
            *s |= (nearest_int(iscale * v) << 4) as u8;
        }
        put_f16(&mut y[DMIN..], max_min / 15.0);
    } else {
        put_f16(&mut y[DMIN..], 0.0);
    }
    (get_f16(&y[D..]), get_f16(&y[DMIN..]))
}

fn fit_scales_weighted(
    x: &[f32; QK],
    qw: &[f32],
    l: &mut [u8; QK],
    y: &mut [u8; BYTES],
) -> (f32, f32) {
    let sigma2 = sum_squares(x) / QK as f32;
    let p = QkxParams { nmax: 3, ..QKX3 };
    let (mut scales, mut mins, mut sw) = ([0f32; 16], [0f32; 16], [0f32; 16]);
    let mut w = [0f32; QK];
    for (j, (ws, xs)) in w.chunks_exact_mut(16).zip(x.chunks_exact(16)).enumerate() {
        ws.copy_from_slice(&weights::<16>(xs, &qw[16 * j..], sigma2));
        sw[j] = ws.iter().fold(0.0f32, |s, &v| s + v);
    }
    for (h, (xs, ls)) in x.chunks_exact(128).zip(l.chunks_exact_mut(128)).enumerate() {
        let (s, m) = make_qkx_quants_x8(&p, xs, &w[128 * h..128 * h + 128], ls);
        scales[8 * h..8 * h + 8].copy_from_slice(&s);
        mins[8 * h..8 * h + 8].copy_from_slice(&m);
    }
    let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
    let dm = make_qp_quants(15, &scales, &mut ls, &sw);
    let mm = make_qp_quants(15, &mins, &mut lm, &sw);
    put_f16(&mut y[D..], dm);
    put_f16(&mut y[DMIN..], mm);
    for j in 0..16 {
        y[j] = ls[j] | (lm[j] << 4);
    }
    (f16_round(dm), f16_round(mm))
}

/// Recomputes the quants from the stored scales; zero-scale sub-blocks keep the fit's quants.
fn requantize(x: &[f32; QK], y: &[u8; BYTES], d_all: f32, m_all: f32, l: &mut [u8; QK]) {
    for ((&sc, xs), ls) in y[..QS]
        .iter()
        .zip(x.chunks_exact(16))
        .zip(l.chunks_exact_mut(16))
    {
        let d = d_all * f32::from(sc & 0xf);
        if d == 0.0 {
            continue;
        }
        let dm = m_all * f32::from(sc >> 4);
        for (o, &v) in ls.iter_mut().zip(xs) {
            *o = nearest_int((v + dm) / d).clamp(0, 3) as u8;
        }
    }
}

/// Decodes whole super-blocks.
pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let (d, min) = (get_f16(&b[D..]), get_f16(&b[DMIN..]));
        for (e, o) in y.iter_mut().enumerate() {
            let sc = b[e / 16];
            let (dl, ml) = (d * f32::from(sc & 0xf), min * f32::from(sc >> 4));
            let q = (b[QS + 32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3;
            *o = dl * f32::from(q) - ml;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_error_bound, sample};
    use wharf_core::DType;

    #[test]
    fn q2_k_error_is_bounded() {
        check_error_bound(DType::Q2K, &sample(2048, 12), |amax| amax * 0.75);
    }
}
