//! The per-element loops the FP8 quantizers share, written branch-free so that they vectorise:
//! the largest magnitude of a run and `encode(round(w / scale))` over a run.

use wharf_core::DType;

use super::{Fp8Format, Fp8Options, e4m3, e5m2};
use crate::elements::{Elements, INF_BITS, RUN, max_abs_bits};

/// The largest `|x|` over elements `start..start + len` as f32 bits; at least
/// [`INF_BITS`] when one of them is NaN or infinite.
#[inline(always)]
pub(super) fn amax_bits(src: &Elements<'_>, start: usize, len: usize) -> u32 {
    let mut buf = [0f32; RUN];
    let mut m = 0;
    let mut i = 0;
    while i < len {
        let n = RUN.min(len - i);
        let run = &mut buf[..n];
        src.load(start + i, run);
        m = m.max(max_abs_bits(run));
        i += n;
    }
    m
}

/// Whether an amax from [`amax_bits`] comes from finite values.
#[inline(always)]
pub(super) fn finite(bits: u32) -> bool {
    bits < INF_BITS
}

/// Codes of elements `start..start + dst.len()` under `scale`.
#[inline(always)]
pub(super) fn quantize_range(
    opts: &Fp8Options,
    src: &Elements<'_>,
    start: usize,
    scale: f32,
    dst: &mut [u8],
) {
    let mut buf = [0f32; RUN];
    for (k, d) in dst.chunks_mut(RUN).enumerate() {
        let run = &mut buf[..d.len()];
        src.load(start + k * RUN, run);
        quantize_run(opts, run, scale, d);
    }
}

/// `dst[i] = encode(round(src[i] / scale))`: the division is a true f32 division, as the
/// reference quantizers compute it; the format and compute dtype are fixed outside the loop.
#[inline(always)]
pub(super) fn quantize_run(opts: &Fp8Options, src: &[f32], scale: f32, dst: &mut [u8]) {
    let bf16 = |x: f32| super::round_to(DType::BF16, x);
    match (opts.format, opts.compute) {
        (Fp8Format::E4M3, DType::F32) => each(src, scale, dst, |x| x, e4m3::encode_branchless),
        (Fp8Format::E4M3, DType::BF16) => each(src, scale, dst, bf16, e4m3::encode_branchless),
        (Fp8Format::E5M2, DType::F32) => each(src, scale, dst, |x| x, e5m2::encode_branchless),
        (Fp8Format::E5M2, DType::BF16) => each(src, scale, dst, bf16, e5m2::encode_branchless),
        // F16 rounding goes through `half`, which does not vectorise: the plain path.
        _ => {
            for (d, &w) in dst.iter_mut().zip(src) {
                *d = opts.quantize(w, scale);
            }
        }
    }
}

#[inline(always)]
fn each(
    src: &[f32],
    scale: f32,
    dst: &mut [u8],
    round: impl Fn(f32) -> f32,
    encode: impl Fn(f32) -> u8,
) {
    for (d, &w) in dst.iter_mut().zip(src) {
        *d = encode(round(w / scale));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fp8::ZeroScale;

    #[test]
    fn runs_match_the_scalar_quantizer() {
        let src: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 2003) as f32 * 0.37 - 300.0)
            .chain([0.0, -0.0, 1e-30, -1e-30, 448.0, -449.0, 1e30])
            .collect();
        for format in [Fp8Format::E4M3, Fp8Format::E5M2] {
            for compute in [DType::F32, DType::BF16, DType::F16] {
                let opts = Fp8Options {
                    format,
                    zero_scale: ZeroScale::One,
                    compute,
                };
                for scale in [1.0f32, 0.0123, 3.7e-3, 1e-35, 250.0] {
                    let mut got = vec![0u8; src.len()];
                    quantize_run(&opts, &src, scale, &mut got);
                    let want: Vec<u8> = src.iter().map(|&w| opts.quantize(w, scale)).collect();
                    assert_eq!(got, want, "{format:?} {compute:?} {scale}");
                }
            }
        }
    }

    #[test]
    fn amax_reads_bf16_and_flags_non_finite() {
        let v = [0.5f32, -3.0, 2.0];
        let b: Vec<u8> = v
            .iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        let bits = amax_bits(&Elements::Bf16(&b), 0, 3);
        assert!(finite(bits));
        assert_eq!(f32::from_bits(bits), 3.0);
        let bad = [1.0f32, f32::NAN];
        assert!(!finite(amax_bits(&Elements::F32(&bad), 0, 2)));
    }
}
