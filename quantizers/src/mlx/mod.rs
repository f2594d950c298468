//! MLX affine quantization, bit for bit with MLX's CPU kernel (`mlx/backend/cpu/quantized.cpp`,
//! mlx 0.32) and `mx.dequantize`.
//!
//! # Layout
//! For a weight `[..., out, in]`: `weight` is `u32 [..., out, in * bits / 32]`, `scales` and
//! `biases` are `[..., out, in / group]` in the source dtype (f32, f16 or bf16). Each group of
//! `group` consecutive elements of a row is one LSB-first bit stream (see `pack.rs`), so a group
//! fills exactly `group * bits / 32` words and groups never share a word.
//!
//! # API
//! - [`MlxParams::new`]`(group, bits)`: group 32/64/128, bits 2/3/4/5/6/8.
//! - [`quantize`]`(src, params, dtype) -> MlxQuantized { weight, scales, biases, dtype }`: `src`
//!   is any row-major tensor whose last dimension is a multiple of `group`. Scales and biases are
//!   computed in f32 and rounded (nearest even) to `dtype` once, at the end, as MLX stores them;
//!   [`MlxQuantized::scales_bytes`] / [`MlxQuantized::biases_bytes`] give the stored bytes.
//! - [`quantize_into`]`(src, params, dtype, (weight_bytes, scales, biases))`: the same from any
//!   [`Elements`] (BF16 read in place) into caller buffers.
//! - [`dequantize`]`(weight, scales, biases, params, dtype)`: `scale * q`, then `+ bias`, each
//!   rounded to `dtype` (MLX's `multiply` then `add` ops).
//!
//! Parallel over groups with rayon; results do not depend on the thread count.

mod affine;
mod lanes;
#[cfg(test)]
mod lanes_tests;
mod pack;

use rayon::prelude::*;
use wharf_core::DType;

use crate::fp8::round_to;
use crate::{Elements, QuantError, Result};

/// Largest supported group.
const MAX_GROUP: usize = 128;

/// Group size and bit width of an MLX affine quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlxParams {
    group: usize,
    bits: u32,
}

impl MlxParams {
    /// MLX's default for `mlx_lm.convert -q`: group 64, 4 bits.
    pub const DEFAULT: Self = Self { group: 64, bits: 4 };

    /// Validates `group` ∈ {32, 64, 128} and `bits` ∈ {2, 3, 4, 5, 6, 8}.
    pub fn new(group: usize, bits: u32) -> Result<Self> {
        if !matches!(group, 32 | 64 | 128) {
            return Err(QuantError::Parameter(format!("MLX group size {group}")));
        }
        if !matches!(bits, 2 | 3 | 4 | 5 | 6 | 8) {
            return Err(QuantError::Parameter(format!("MLX bits {bits}")));
        }
        Ok(Self { group, bits })
    }

    /// Elements per group.
    pub const fn group(self) -> usize {
        self.group
    }

    /// Bits per code.
    pub const fn bits(self) -> u32 {
        self.bits
    }

    /// `u32` words one group packs into.
    pub const fn words_per_group(self) -> usize {
        self.group * self.bits as usize / 32
    }
}

/// The three tensors of one MLX-quantized weight (flattened, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct MlxQuantized {
    /// Packed codes, `len / group * words_per_group` words.
    pub weight: Vec<u32>,
    /// One scale per group, each exactly representable in `dtype`.
    pub scales: Vec<f32>,
    /// One bias per group, each exactly representable in `dtype`.
    pub biases: Vec<f32>,
    /// Storage dtype of scales and biases.
    pub dtype: DType,
}

impl MlxQuantized {
    /// Scales as little-endian bytes of `dtype`.
    pub fn scales_bytes(&self) -> Vec<u8> {
        to_bytes(self.dtype, &self.scales)
    }

    /// Biases as little-endian bytes of `dtype`.
    pub fn biases_bytes(&self) -> Vec<u8> {
        to_bytes(self.dtype, &self.biases)
    }
}

/// `values` (already representable in `dtype`) as little-endian bytes.
fn to_bytes(dtype: DType, values: &[f32]) -> Vec<u8> {
    use wharf_core::cast::{f32_to_bf16_bits, f32_to_f16_bits};
    match dtype {
        DType::BF16 => values
            .iter()
            .flat_map(|&v| f32_to_bf16_bits(v).to_le_bytes())
            .collect(),
        DType::F16 => values
            .iter()
            .flat_map(|&v| f32_to_f16_bits(v).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Checks that `dtype` is F32, F16 or BF16.
fn check_dtype(dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => Ok(()),
        other => Err(QuantError::Unsupported(other)),
    }
}

/// Quantizes `src` (last dimension a multiple of `params.group()`) with scales and biases
/// stored in `dtype`.
///
/// Errors: `Length` if `src.len()` is not a multiple of the group, `NonFinite`, `Unsupported`
/// for a dtype other than F32/F16/BF16.
pub fn quantize(src: &[f32], params: MlxParams, dtype: DType) -> Result<MlxQuantized> {
    let groups = group_count(src.len(), params, "src")?;
    let mut bytes = vec![0u8; groups * params.words_per_group() * 4];
    let mut scales = vec![0f32; groups];
    let mut biases = vec![0f32; groups];
    let out = (&mut bytes[..], &mut scales[..], &mut biases[..]);
    quantize_into(Elements::F32(src), params, dtype, out)?;
    let weight = bytes
        .as_chunks::<4>()
        .0
        .iter()
        .map(|c| u32::from_le_bytes(*c))
        .collect();
    Ok(MlxQuantized {
        weight,
        scales,
        biases,
        dtype,
    })
}

/// Caller buffers for [`quantize_into`]: the packed words as little-endian bytes, then one
/// scale and one bias per group (f32 values representable in the storage dtype).
pub type MlxOut<'a> = (&'a mut [u8], &'a mut [f32], &'a mut [f32]);

/// Groups per parallel work item.
const TASK_GROUPS: usize = 256;

/// [`quantize`] of any [`Elements`] into caller buffers.
///
/// Errors: as [`quantize`], and `Length` for a buffer of the wrong size.
pub fn quantize_into(
    src: Elements<'_>,
    params: MlxParams,
    dtype: DType,
    (weight, scales, biases): MlxOut<'_>,
) -> Result<()> {
    check_dtype(dtype)?;
    let groups = group_count(src.len(), params, "src")?;
    let group_bytes = params.words_per_group() * 4;
    for (what, want, got) in [
        ("weight bytes", groups * group_bytes, weight.len()),
        ("scales", groups, scales.len()),
        ("biases", groups, biases.len()),
    ] {
        if want != got {
            return Err(length(what, want, got));
        }
    }
    let finite = weight
        .par_chunks_mut(TASK_GROUPS * group_bytes)
        .zip(scales.par_chunks_mut(TASK_GROUPS))
        .zip(biases.par_chunks_mut(TASK_GROUPS))
        .enumerate()
        .map(|(t, ((w, s), b))| quantize_groups(&src, t * TASK_GROUPS, params, dtype, (w, s, b)))
        .reduce(|| true, |a, b| a && b);
    if !finite {
        src.check_finite()?;
    }
    Ok(())
}

wharf_core::avx2_dispatch! {
    /// Consecutive groups from group `first` on; false if one holds a NaN or infinity.
    fn quantize_groups(
        src: &Elements<'_>,
        first: usize,
        params: MlxParams,
        dtype: DType,
        out: MlxOut<'_>
    ) -> bool = quantize_groups_body;
}

/// [`quantize_groups`] as one body for both builds: the kernel for this bit width.
#[inline(always)]
fn quantize_groups_body(
    src: &Elements<'_>,
    first: usize,
    params: MlxParams,
    dtype: DType,
    out: MlxOut<'_>,
) -> bool {
    let runs = params.group / 8;
    match params.bits {
        2 => lanes::quantize_groups::<2>(src, first, runs, dtype, out),
        3 => lanes::quantize_groups::<3>(src, first, runs, dtype, out),
        4 => lanes::quantize_groups::<4>(src, first, runs, dtype, out),
        5 => lanes::quantize_groups::<5>(src, first, runs, dtype, out),
        6 => lanes::quantize_groups::<6>(src, first, runs, dtype, out),
        _ => lanes::quantize_groups::<8>(src, first, runs, dtype, out),
    }
}

/// Number of groups in `len` elements, or a `Length` error.
fn group_count(len: usize, params: MlxParams, what: &'static str) -> Result<usize> {
    if !len.is_multiple_of(params.group) {
        return Err(QuantError::Length {
            dtype: DType::U32,
            what,
            expected: len.next_multiple_of(params.group),
            actual: len,
        });
    }
    Ok(len / params.group)
}

/// Dequantizes packed codes: `round(round(scale * q) + bias)` in `dtype`, widened to f32.
///
/// `scales` and `biases` hold one value per group (`weight.len() / words_per_group`).
pub fn dequantize(
    weight: &[u32],
    scales: &[f32],
    biases: &[f32],
    params: MlxParams,
    dtype: DType,
) -> Result<Vec<f32>> {
    check_dtype(dtype)?;
    let wpg = params.words_per_group();
    if !weight.len().is_multiple_of(wpg) {
        return Err(length(
            "weight",
            weight.len().next_multiple_of(wpg),
            weight.len(),
        ));
    }
    let groups = weight.len() / wpg;
    for (what, got) in [("scales", scales.len()), ("biases", biases.len())] {
        if got != groups {
            return Err(length(what, groups, got));
        }
    }
    let mut out = vec![0f32; groups * params.group];
    out.par_chunks_mut(params.group)
        .zip(weight.par_chunks(wpg))
        .zip(scales.par_iter().zip(biases.par_iter()))
        .for_each(|((dst, words), (&s, &b))| {
            let mut codes = [0u32; MAX_GROUP];
            let codes = &mut codes[..params.group];
            pack::unpack(words, params.bits, codes);
            for (d, &q) in dst.iter_mut().zip(codes.iter()) {
                *d = round_to(dtype, round_to(dtype, s * q as f32) + b);
            }
        });
    Ok(out)
}

/// A `Length` error about the packed weight.
fn length(what: &'static str, expected: usize, actual: usize) -> QuantError {
    QuantError::Length {
        dtype: DType::U32,
        what,
        expected,
        actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_validated() {
        assert!(MlxParams::new(64, 4).is_ok());
        assert!(matches!(
            MlxParams::new(16, 4),
            Err(QuantError::Parameter(_))
        ));
        assert!(matches!(
            MlxParams::new(64, 7),
            Err(QuantError::Parameter(_))
        ));
    }

    #[test]
    fn round_trip_is_close() {
        let src: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
        for bits in [2, 3, 4, 5, 6, 8] {
            let p = MlxParams::new(32, bits).unwrap();
            let q = quantize(&src, p, DType::F32).unwrap();
            assert_eq!(q.weight.len(), 256 * bits as usize / 32);
            let back = dequantize(&q.weight, &q.scales, &q.biases, p, DType::F32).unwrap();
            let tol = 2.0 / n(bits);
            assert!(
                src.iter().zip(&back).all(|(a, b)| (a - b).abs() <= tol),
                "{bits}"
            );
        }
    }

    fn n(bits: u32) -> f32 {
        ((1u32 << bits) - 1) as f32
    }

    #[test]
    fn bf16_input_gives_the_result_of_its_f32_values() {
        let (bytes, f32s) = crate::elements::bf16_test_values(64 * 40);
        for (group, bits) in [(64, 4), (32, 3), (128, 8), (64, 2), (32, 6), (64, 5)] {
            let p = MlxParams::new(group, bits).unwrap();
            let want = quantize(&f32s, p, DType::BF16).unwrap();
            let groups = f32s.len() / group;
            let mut w = vec![0u8; groups * p.words_per_group() * 4];
            let (mut s, mut b) = (vec![0f32; groups], vec![0f32; groups]);
            let src = Elements::Bf16(&bytes);
            quantize_into(src, p, DType::BF16, (&mut w, &mut s, &mut b)).unwrap();
            let words: Vec<u32> = w
                .as_chunks::<4>()
                .0
                .iter()
                .map(|c| u32::from_le_bytes(*c))
                .collect();
            assert_eq!((words, s, b), (want.weight, want.scales, want.biases));
        }
        let mut bad = f32s.clone();
        bad[100] = f32::NAN;
        let err = quantize(&bad, MlxParams::DEFAULT, DType::F32).unwrap_err();
        assert_eq!(err, QuantError::NonFinite { index: 100 });
    }

    /// The dispatched kernel (AVX2 where the CPU has it) against the baseline build of its
    /// body, on groups with signed zeros, ties, constant runs, wide ranges and non-finite values.
    #[test]
    fn dispatched_groups_equal_the_baseline_build() {
        let mut v: Vec<f32> = (0..128 * 24u32)
            .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761) & 0xBF7F_FFFF) * 1e-3)
            .collect();
        v[..64].fill(-0.0);
        v[64..128]
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = i as f32 * 0.5 - 7.5);
        v[128..192].fill(3.25);
        v[200] = 6e4;
        let mut bad = v.clone();
        bad[300] = f32::INFINITY;
        let bf16: Vec<u8> = v
            .iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        for (group, bits) in [(64, 4), (32, 3), (128, 8), (64, 2), (32, 6), (64, 5)] {
            let p = MlxParams::new(group, bits).unwrap();
            for src in [
                Elements::F32(&v),
                Elements::Bf16(&bf16),
                Elements::F32(&bad),
            ] {
                let run = |dispatched: bool| {
                    let groups = src.len() / group;
                    let mut w = vec![0u8; groups * p.words_per_group() * 4];
                    let (mut s, mut b) = (vec![0f32; groups], vec![0f32; groups]);
                    let out = (&mut w[..], &mut s[..], &mut b[..]);
                    let ok = if dispatched {
                        quantize_groups(&src, 0, p, DType::BF16, out)
                    } else {
                        quantize_groups_body(&src, 0, p, DType::BF16, out)
                    };
                    (
                        ok,
                        w,
                        s.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        b.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    )
                };
                assert_eq!(run(true), run(false), "{group} {bits}");
            }
        }
    }

    #[test]
    fn ragged_input_is_a_length_error() {
        let err = quantize(&[0.0; 40], MlxParams::DEFAULT, DType::F32).unwrap_err();
        assert!(matches!(err, QuantError::Length { actual: 40, .. }));
    }
}
