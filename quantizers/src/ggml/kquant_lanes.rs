//! The k-quant scale searches run on eight sub-blocks at once, one sub-block per SIMD lane.
//!
//! libggml calls `make_qkx2_quants` / `make_qx_quants` (ggml/src/ggml-quants.c) once per
//! sub-block, and each call is a chain of serial float sums: 20-odd candidate scales, each
//! summed element by element in order. Those chains are latency bound and cannot be reordered
//! without changing the bytes. The sub-blocks of a super-block are independent, though, so
//! here lane `k` carries sub-block `k` through exactly the scalar sequence of operations (same
//! operands, same order, f32 rounding, no fusing) while the eight chains share each
//! instruction. Per-lane branches become selects. The results are bit-identical to
//! [`make_qkx_quants`](super::kquant_util::make_qkx_quants) and
//! [`make_qx_quants`](super::kquant_util::make_qx_quants), which the tests below check.
//!
//! Layout: `x`, `w` and `l` hold the eight sub-blocks one after another (`8 * n` values,
//! `n <= 32`); internally they are transposed so element `i` of every sub-block sits in one
//! `[f32; 8]`.

use super::kquant_util::{GROUP_MAX_EPS, QkxParams};

/// Sub-blocks searched together.
pub(super) const LANES: usize = 8;

type Lanes = [f32; LANES];

/// Longest sub-block.
const MAX_N: usize = 32;

/// `nearest_int(y)` clamped to `[lo, hi]`, as f32: the integer bit trick of the scalar helper,
/// kept in integers so every input (even inf or NaN) maps exactly as it does there.
#[inline(always)]
fn quant(y: f32, lo: i32, hi: i32) -> f32 {
    let v = y + 12_582_912.0;
    let i = (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000;
    i.clamp(lo, hi) as f32
}

#[inline(always)]
fn lanes(f: impl Fn(usize) -> f32) -> Lanes {
    std::array::from_fn(f)
}

#[inline(always)]
fn select(c: [bool; LANES], a: Lanes, b: Lanes) -> Lanes {
    lanes(|k| if c[k] { a[k] } else { b[k] })
}

/// `src` (eight runs of `n`) as `n` rows of eight lanes.
#[inline(always)]
fn transpose_in(src: &[f32], n: usize) -> [Lanes; MAX_N] {
    let mut t = [[0f32; LANES]; MAX_N];
    for (k, run) in src.chunks_exact(n).take(LANES).enumerate() {
        for (row, &v) in t.iter_mut().zip(run) {
            row[k] = v;
        }
    }
    t
}

/// Eight `make_qkx_quants` searches (`p` shared; see its doc): returns each sub-block's
/// `(scale, -min)` and writes its quants into `l`.
pub(super) fn make_qkx_quants_x8(
    p: &QkxParams,
    x: &[f32],
    w: &[f32],
    l: &mut [u8],
) -> (Lanes, Lanes) {
    let n = x.len() / LANES;
    assert!((1..=MAX_N).contains(&n) && w.len() == x.len() && l.len() == x.len());
    let xt = transpose_in(x, n);
    let wt = transpose_in(w, n);
    let (xt, wt) = (&xt[..n], &wt[..n]);
    let (mut min, mut max, mut sum_w) = (xt[0], xt[0], wt[0]);
    let mut sum_x = lanes(|k| sum_w[k] * xt[0][k]);
    for (xi, wi) in xt.iter().zip(wt).skip(1) {
        min = lanes(|k| if xi[k] < min[k] { xi[k] } else { min[k] });
        max = lanes(|k| if xi[k] > max[k] { xi[k] } else { max[k] });
        sum_w = lanes(|k| sum_w[k] + wi[k]);
        sum_x = lanes(|k| sum_x[k] + wi[k] * xi[k]);
    }
    min = lanes(|k| if min[k] > 0.0 { 0.0 } else { min[k] });
    let flat: [bool; LANES] = std::array::from_fn(|k| max[k] == min[k]);
    let flat_min = min;
    let nmax = p.nmax as f32;
    let quants = |iscale: Lanes, min: Lanes, out: &mut [Lanes; MAX_N]| {
        for (o, xi) in out.iter_mut().zip(xt) {
            *o = lanes(|k| quant(iscale[k] * (xi[k] - min[k]), 0, p.nmax));
        }
    };
    let error = |lq: &[Lanes; MAX_N], scale: Lanes, min: Lanes| {
        let mut err = [0f32; LANES];
        for ((li, xi), wi) in lq.iter().zip(xt).zip(wt) {
            let d = lanes(|k| scale[k] * li[k] + min[k] - xi[k]);
            let d = lanes(|k| if p.use_mad { d[k].abs() } else { d[k] * d[k] });
            err = lanes(|k| err[k] + wi[k] * d[k]);
        }
        err
    };
    let mut best_l = [[0f32; LANES]; MAX_N];
    let iscale = lanes(|k| nmax / (max[k] - min[k]));
    quants(iscale, min, &mut best_l);
    let mut scale = lanes(|k| 1.0 / iscale[k]);
    let mut best = error(&best_l, scale, min);
    let mut aux = [[0f32; LANES]; MAX_N];
    for is in 0..=p.nstep {
        let r = p.rmin + p.rdelta * is as f32 + nmax;
        quants(lanes(|k| r / (max[k] - min[k])), min, &mut aux);
        let (mut sum_l, mut sum_l2, mut sum_xl) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
        for ((a, xi), wi) in aux.iter().zip(xt).zip(wt) {
            sum_l = lanes(|k| sum_l[k] + wi[k] * a[k]);
            sum_l2 = lanes(|k| sum_l2[k] + wi[k] * a[k] * a[k]);
            sum_xl = lanes(|k| sum_xl[k] + wi[k] * a[k] * xi[k]);
        }
        let d = lanes(|k| sum_w[k] * sum_l2[k] - sum_l[k] * sum_l[k]);
        let this_scale = lanes(|k| (sum_w[k] * sum_xl[k] - sum_x[k] * sum_l[k]) / d[k]);
        let this_min = lanes(|k| (sum_l2[k] * sum_x[k] - sum_l[k] * sum_xl[k]) / d[k]);
        let clip: [bool; LANES] = std::array::from_fn(|k| this_min[k] > 0.0);
        let this_min = select(clip, [0.0; LANES], this_min);
        let this_scale = select(clip, lanes(|k| sum_xl[k] / sum_l2[k]), this_scale);
        let err = error(&aux, this_scale, this_min);
        let win: [bool; LANES] = std::array::from_fn(|k| d[k] > 0.0 && err[k] < best[k]);
        if win.iter().any(|&b| b) {
            for (b, a) in best_l.iter_mut().zip(&aux) {
                *b = select(win, *a, *b);
            }
            best = select(win, err, best);
            scale = select(win, this_scale, scale);
            min = select(win, this_min, min);
        }
    }
    let scale = select(flat, [0.0; LANES], scale);
    let min = select(flat, flat_min, min);
    for (k, run) in l.chunks_exact_mut(n).enumerate() {
        for (o, bl) in run.iter_mut().zip(&best_l) {
            *o = if flat[k] { 0 } else { bl[k] as u8 };
        }
    }
    (scale, lanes(|k| -min[k]))
}

/// Eight `make_qx_quants` searches (`rmse_type == 1`; see its doc): returns each sub-block's
/// scale and writes its quants (offset by `nmax`) into `out`.
pub(super) fn make_qx_quants_x8(nmax: i32, x: &[f32], out: &mut [i8], qw: Option<&[f32]>) -> Lanes {
    let n = x.len() / LANES;
    assert!((1..=MAX_N).contains(&n) && out.len() == x.len());
    let xt = transpose_in(x, n);
    let xt = &xt[..n];
    let wt = match qw {
        Some(q) => transpose_in(&q[..x.len()], n),
        None => {
            let mut t = [[0f32; LANES]; MAX_N];
            for (o, xi) in t.iter_mut().zip(xt) {
                *o = lanes(|k| xi[k] * xi[k]);
            }
            t
        }
    };
    let wt = &wt[..n];
    let (mut amax, mut max) = ([0f32; LANES], [0f32; LANES]);
    for xi in xt {
        let bigger: [bool; LANES] = std::array::from_fn(|k| xi[k].abs() > amax[k]);
        amax = select(bigger, lanes(|k| xi[k].abs()), amax);
        max = select(bigger, *xi, max);
    }
    let zero: [bool; LANES] = std::array::from_fn(|k| amax[k] < GROUP_MAX_EPS);
    let fnmax = nmax as f32;
    let sums = |iscale: Lanes, lq: &mut [Lanes; MAX_N]| {
        let (mut sumlx, mut suml2) = ([0f32; LANES], [0f32; LANES]);
        for ((o, xi), wi) in lq.iter_mut().zip(xt).zip(wt) {
            let li = lanes(|k| quant(iscale[k] * xi[k], -nmax, nmax - 1));
            sumlx = lanes(|k| sumlx[k] + wi[k] * xi[k] * li[k]);
            suml2 = lanes(|k| suml2[k] + wi[k] * li[k] * li[k]);
            *o = li;
        }
        (sumlx, suml2)
    };
    let mut best_l = [[0f32; LANES]; MAX_N];
    let (sumlx, suml2) = sums(lanes(|k| -fnmax / max[k]), &mut best_l);
    let mut scale = lanes(|k| {
        if suml2[k] != 0.0 {
            sumlx[k] / suml2[k]
        } else {
            0.0
        }
    });
    let mut best = lanes(|k| scale[k] * sumlx[k]);
    let mut aux = [[0f32; LANES]; MAX_N];
    for is in (-9..=9).filter(|&is| is != 0) {
        let r = fnmax + 0.1 * is as f32;
        let (sumlx, suml2) = sums(lanes(|k| -r / max[k]), &mut aux);
        let win: [bool; LANES] =
            std::array::from_fn(|k| suml2[k] > 0.0 && sumlx[k] * sumlx[k] > best[k] * suml2[k]);
        if win.iter().any(|&b| b) {
            for (b, a) in best_l.iter_mut().zip(&aux) {
                *b = select(win, *a, *b);
            }
            scale = select(win, lanes(|k| sumlx[k] / suml2[k]), scale);
            best = select(win, lanes(|k| scale[k] * sumlx[k]), best);
        }
    }
    for (k, run) in out.chunks_exact_mut(n).enumerate() {
        for (o, bl) in run.iter_mut().zip(&best_l) {
            *o = if zero[k] {
                0
            } else {
                (nmax + bl[k] as i32) as i8
            };
        }
    }
    select(zero, [0.0; LANES], scale)
}

#[cfg(test)]
mod tests {
    use super::super::kquant_util::{make_qkx_quants, make_qx_quants};
    use super::*;

    /// Sub-blocks that exercise every branch: noise of varied scale, constant runs, all-zero and
    /// all-positive runs, tiny and huge magnitudes, ties of `|x|`.
    fn cases(n: usize) -> Vec<Vec<f32>> {
        let mut s = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let mut out = Vec::new();
        for c in 0..400 {
            let mut x: Vec<f32> = (0..LANES * n).map(|_| next()).collect();
            for (k, run) in x.chunks_exact_mut(n).enumerate() {
                match (c + k) % 11 {
                    0 => run.fill(0.0),
                    1 => run.fill(0.25),
                    2 => run.iter_mut().for_each(|v| *v = v.abs() + 0.1),
                    3 => run.iter_mut().for_each(|v| *v *= 1e-20),
                    4 => run.iter_mut().for_each(|v| *v = (*v * 8.0).round()),
                    5 => run.iter_mut().for_each(|v| *v *= 1e6),
                    6 => run[n / 2] = 1e-40,
                    7 => run.iter_mut().for_each(|v| *v = -v.abs()),
                    _ => {}
                }
            }
            out.push(x);
        }
        out
    }

    fn check_qkx(p: &QkxParams, n: usize, weights: impl Fn(&[f32]) -> Vec<f32>) {
        for x in cases(n) {
            let w: Vec<f32> = x.chunks_exact(n).flat_map(&weights).collect();
            let mut got = vec![0u8; x.len()];
            let (scale, min) = make_qkx_quants_x8(p, &x, &w, &mut got);
            for k in 0..LANES {
                let r = k * n..(k + 1) * n;
                let mut want = vec![0u8; n];
                let (s, m) = make_qkx_quants(p, &x[r.clone()], &w[r.clone()], &mut want);
                assert_eq!(
                    (scale[k].to_bits(), min[k].to_bits()),
                    (s.to_bits(), m.to_bits())
                );
                assert_eq!(&got[r], &want[..], "{p:?} lane {k}");
            }
        }
    }

    #[test]
    fn qkx_lanes_match_scalar() {
        let q4 = QkxParams {
            nmax: 15,
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        };
        let q2 = QkxParams {
            nmax: 3,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        let av = |xs: &[f32]| {
            let av = (xs.iter().fold(0.0f32, |s, v| s + v * v) / xs.len() as f32).sqrt();
            xs.iter().map(|v| av + v.abs()).collect()
        };
        check_qkx(&q4, 32, av);
        check_qkx(&QkxParams { nmax: 31, ..q4 }, 32, av);
        check_qkx(&q2, 16, |xs| xs.iter().map(|v| v.abs()).collect());
        let q3 = QkxParams {
            nmax: 15,
            rmin: -0.9,
            rdelta: 0.05,
            nstep: 36,
            use_mad: false,
        };
        check_qkx(&q3, 32, |xs| xs.iter().map(|v| 0.5 + v * v).collect());
    }

    #[test]
    fn qx_lanes_match_scalar() {
        for (nmax, n) in [(32, 16), (16, 32), (4, 16), (8, 32)] {
            for (x, weighted) in cases(n).into_iter().zip([false, true].into_iter().cycle()) {
                let qw: Vec<f32> = x.iter().map(|v| 0.25 + v.abs()).collect();
                let qw = weighted.then_some(&qw[..]);
                let mut got = vec![0i8; x.len()];
                let scale = make_qx_quants_x8(nmax, &x, &mut got, qw);
                for (k, got_scale) in scale.iter().enumerate() {
                    let r = k * n..(k + 1) * n;
                    let mut want = vec![0i8; n];
                    let s =
                        make_qx_quants(nmax, &x[r.clone()], &mut want, qw.map(|q| &q[r.clone()]));
                    assert_eq!(got_scale.to_bits(), s.to_bits(), "nmax {nmax} lane {k}");
                    assert_eq!(&got[r], &want[..], "nmax {nmax} lane {k}");
                }
            }
        }
    }
}
