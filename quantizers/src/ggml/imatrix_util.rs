//! Helpers of libggml's importance-weighted quantizers (`quantize_row_*_impl`).
//!
//! Source: ggml/src/ggml-quants.c (`make_qkx3_quants` call parameters, `make_qp_quants`, and the
//! `sigma2` row statistics). Float operations keep the C order, without fused multiply-adds.

use super::kquant_util::{GROUP_MAX_EPS, QkxParams, nearest_int};

/// The candidate search every `_impl` quantizer runs through `make_qkx3_quants`
/// (`rmin = -0.9`, `rdelta = 0.05`, `nstep = 36`, squared error); set `nmax` per type.
pub(super) const QKX3: QkxParams = QkxParams {
    nmax: 0,
    rmin: -0.9,
    rdelta: 0.05,
    nstep: 36,
    use_mad: false,
};

/// Runs a 32-element block quantizer over one row: `plain` per block without an importance
/// matrix, `weighted(x, qw, sigma2, y)` with one (`quantize_row_*_ref` / `quantize_row_*_impl`).
pub(super) fn row_blocks<const QK: usize, const BYTES: usize>(
    x: &[f32],
    imatrix: Option<&[f32]>,
    y: &mut [u8],
    plain: fn(&[f32; QK], &mut [u8; BYTES]),
    weighted: fn(&[f32; QK], &[f32; QK], f32, &mut [u8; BYTES]),
) {
    let (xb, _) = x.as_chunks::<QK>();
    let (yb, _) = y.as_chunks_mut::<BYTES>();
    match imatrix {
        None => xb.iter().zip(yb).for_each(|(x, y)| plain(x, y)),
        Some(im) => {
            let sigma2 = row_sigma2(x);
            let (wb, _) = im.as_chunks::<QK>();
            for ((x, y), qw) in xb.iter().zip(yb).zip(wb) {
                weighted(x, qw, sigma2, y);
            }
        }
    }
}

/// Mean square of a whole row, the `sigma2` of the 32-element `_impl` quantizers.
pub(super) fn row_sigma2(x: &[f32]) -> f32 {
    sum_squares(x) / x.len() as f32
}

/// Sum of squares in order.
pub(super) fn sum_squares(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |s, &v| s + v * v)
}

/// `qw[j] * sqrt(sigma2 + x[j]^2)`: the element weights of the `_impl` quantizers.
pub(super) fn weights<const N: usize>(x: &[f32], qw: &[f32], sigma2: f32) -> [f32; N] {
    std::array::from_fn(|j| qw[j] * (sigma2 + x[j] * x[j]).sqrt())
}

/// Weighted squared error of quantizing `x` with `iscale` (quants capped at `nmax` only).
fn qp_mse(nmax: i32, x: &[f32], qw: &[f32], iscale: f32) -> f32 {
    let scale = 1.0 / iscale;
    let mut mse = 0.0f32;
    for (&v, &w) in x.iter().zip(qw) {
        let l = nearest_int(iscale * v).min(nmax);
        let diff = v - scale * l as f32;
        mse += w * diff * diff;
    }
    mse
}

/// `make_qp_quants`: non-negative quants in `[0, nmax]` (no lower clamp, as in C: values are
/// stored as bytes) for a list of sub-block scales, weighted by `qw`. Returns the scale.
pub(super) fn make_qp_quants(nmax: i32, x: &[f32], l: &mut [u8], qw: &[f32]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, &v| if m > v { m } else { v });
    if max < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    // The first error uses the unclamped quants, read back as bytes.
    let scale = 1.0 / iscale;
    let mut best = 0.0f32;
    for (&v, &w) in x.iter().zip(qw) {
        let q = nearest_int(iscale * v) as u8;
        let diff = v - scale * f32::from(q);
        best += w * diff * diff;
    }
    for is in (-4..=4).filter(|&is| is != 0) {
        let iscale_is = (0.1 * is as f32 + nmax as f32) / max;
        let mse = qp_mse(nmax, x, qw, iscale_is);
        if mse < best {
            best = mse;
            iscale = iscale_is;
        }
    }
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for ((o, &v), &w) in l.iter_mut().zip(x).zip(qw) {
        let q = nearest_int(iscale * v).min(nmax);
        *o = q as u8;
        sumlx += w * v * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    refine_qp(nmax, x, l, qw, (sumlx, suml2))
}

/// Up to five rounds of coordinate descent on the quants of [`make_qp_quants`].
fn refine_qp(nmax: i32, x: &[f32], l: &mut [u8], qw: &[f32], sums: (f32, f32)) -> f32 {
    let (mut sumlx, mut suml2) = sums;
    for _ in 0..5 {
        let mut changed = false;
        for ((o, &v), &w) in l.iter_mut().zip(x).zip(qw) {
            let cur = f32::from(*o);
            let mut slx = sumlx - w * v * cur;
            let mut sl2 = suml2 - w * cur * cur;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(v * sl2 / slx).min(nmax);
                if new_l != i32::from(*o) {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *o = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}
