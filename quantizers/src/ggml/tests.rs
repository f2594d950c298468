//! API tests and helpers shared by the per-type tests.

use proptest::prelude::*;
use wharf_core::DType;

use super::{can_dequantize, can_quantize, dequantize, quantize};
use crate::QuantError;

/// Every block type this module quantizes.
pub(super) const BLOCK_TYPES: [DType; 10] = [
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q2K,
    DType::Q3K,
    DType::Q4K,
    DType::Q5K,
    DType::Q6K,
];

/// `n` deterministic pseudo-normal values (sum of uniforms) with a few outliers.
pub(super) fn sample(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
        .map(|i| {
            let v = (0..4).map(|_| uniform()).sum::<f32>();
            if i % 97 == 3 { v * 8.0 } else { v }
        })
        .collect()
}

fn encode(dtype: DType, x: &[f32], n_per_row: usize, imatrix: Option<&[f32]>) -> Vec<u8> {
    let mut q = vec![0u8; dtype.nbytes(x.len() as u64).unwrap() as usize];
    quantize(dtype, x, n_per_row, imatrix, &mut q).unwrap();
    q
}

fn round_trip(dtype: DType, x: &[f32], imatrix: Option<&[f32]>) -> Vec<f32> {
    let q = encode(dtype, x, x.len(), imatrix);
    let mut y = vec![0f32; x.len()];
    dequantize(dtype, &q, &mut y).unwrap();
    y
}

/// Quantizes `x` as one row, decodes it, and checks every element's error against
/// `bound(max |x| of its block)`.
pub(super) fn check_error_bound(dtype: DType, x: &[f32], bound: impl Fn(f32) -> f32) {
    let y = round_trip(dtype, x, None);
    let block = dtype.layout().elems as usize;
    for (b, (xs, ys)) in x.chunks(block).zip(y.chunks(block)).enumerate() {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (a, b2)) in xs.iter().zip(ys).enumerate() {
            let err = (a - b2).abs();
            assert!(
                err <= bound(amax),
                "{dtype} block {b} elem {i}: {a} -> {b2} (amax {amax})"
            );
        }
    }
}

#[test]
fn supported_types() {
    for d in BLOCK_TYPES
        .into_iter()
        .chain([DType::F32, DType::F16, DType::BF16])
    {
        assert!(can_quantize(d) && can_dequantize(d), "{d}");
    }
    assert!(!can_quantize(DType::IQ2XXS) && !can_quantize(DType::Q8K));
    for d in [DType::IQ4NL, DType::IQ4XS] {
        assert!(can_dequantize(d) && !can_quantize(d), "{d}");
    }
    let mut out = [0u8; 66];
    let err = quantize(DType::IQ2XXS, &[0.0; 256], 256, None, &mut out);
    assert_eq!(err, Err(QuantError::Unsupported(DType::IQ2XXS)));
}

#[test]
fn bad_lengths_are_errors() {
    let x = sample(512, 1);
    let mut q = vec![0u8; 18 * 16];
    assert!(matches!(
        quantize(DType::Q4_0, &x, 48, None, &mut q),
        Err(QuantError::Parameter(_))
    ));
    assert!(matches!(
        quantize(DType::Q4_0, &x, 0, None, &mut q),
        Err(QuantError::Parameter(_))
    ));
    assert!(matches!(
        quantize(DType::Q4K, &x, 128, None, &mut q),
        Err(QuantError::Parameter(_))
    ));
    let short = quantize(DType::Q4_0, &x, 256, None, &mut q[..100]);
    assert!(matches!(
        short,
        Err(QuantError::Length {
            what: "dst bytes",
            expected: 288,
            ..
        })
    ));
    let im = quantize(DType::Q4_0, &x, 256, Some(&[1.0; 32]), &mut q);
    assert!(matches!(
        im,
        Err(QuantError::Length {
            what: "imatrix",
            ..
        })
    ));
    let mut y = vec![0f32; 100];
    assert!(dequantize(DType::Q4_0, &q, &mut y).is_err());
    let mut y = vec![0f32; 256];
    assert!(matches!(
        dequantize(DType::Q4_0, &q, &mut y),
        Err(QuantError::Length { .. })
    ));
}

#[test]
fn non_finite_input_is_rejected() {
    let mut x = sample(256, 2);
    x[77] = f32::NAN;
    let mut q = vec![0u8; 144];
    let err = quantize(DType::Q4K, &x, 256, None, &mut q);
    assert_eq!(err, Err(QuantError::NonFinite { index: 77 }));
    x[77] = 0.0;
    let mut im = vec![1.0f32; 256];
    im[3] = f32::INFINITY;
    assert!(matches!(
        quantize(DType::Q4K, &x, 256, Some(&im), &mut q),
        Err(QuantError::Parameter(_))
    ));
}

#[test]
fn dense_types_round_trip() {
    let x = sample(1000, 3);
    for (dtype, tol) in [(DType::F32, 0.0), (DType::F16, 1e-3), (DType::BF16, 8e-3)] {
        let y = round_trip(dtype, &x, None);
        for (a, b) in x.iter().zip(&y) {
            assert!(
                (a - b).abs() <= tol * a.abs().max(1e-3),
                "{dtype}: {a} -> {b}"
            );
        }
    }
    let mut q = [0u8; 2];
    quantize(DType::BF16, &[f32::from_bits(0x7f80_0001)], 1, None, &mut q).unwrap();
    assert_eq!(u16::from_le_bytes(q), 0x7fc0);
}

#[test]
fn output_does_not_depend_on_thread_count() {
    let x = sample(256 * 24, 4);
    let im: Vec<f32> = sample(512, 5).iter().map(|v| v * v + 0.1).collect();
    for dtype in BLOCK_TYPES {
        let pool = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        let one = pool(1).install(|| encode(dtype, &x, 512, None));
        let four = pool(4).install(|| encode(dtype, &x, 512, None));
        assert_eq!(one, four, "{dtype}");
        let one = pool(1).install(|| encode(dtype, &x, 512, Some(&im)));
        let four = pool(4).install(|| encode(dtype, &x, 512, Some(&im)));
        assert_eq!(one, four, "{dtype} imatrix");
        // Rows are independent: quantizing row by row gives the same bytes.
        let per_row: Vec<u8> = x
            .chunks(512)
            .flat_map(|r| encode(dtype, r, 512, None))
            .collect();
        assert_eq!(per_row, encode(dtype, &x, 512, None), "{dtype} per row");
    }
}

#[test]
fn zero_rows_decode_to_zero() {
    for dtype in BLOCK_TYPES {
        let y = round_trip(dtype, &[0.0; 512], None);
        assert!(y.iter().all(|&v| v == 0.0), "{dtype}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn round_trip_error_is_bounded(
        t in 0usize..10,
        scale in -2i32..6,
        x in proptest::collection::vec(-1.0f32..1.0, 256),
        weighted in any::<bool>(),
    ) {
        let dtype = BLOCK_TYPES[t];
        let s = 2f32.powi(scale * 3);
        let x: Vec<f32> = x.iter().map(|v| v * s).collect();
        let im: Vec<f32> = x.iter().map(|v| v.abs() / s + 0.01).collect();
        let y = round_trip(dtype, &x, weighted.then_some(&im[..]));
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        // Two-bit codes are coarse, but every type stays within the block's range (for
        // magnitudes where the f16 super-scales are not deep in f16's subnormals).
        for (a, b) in x.iter().zip(&y) {
            prop_assert!((a - b).abs() <= amax * 1.01, "{} {} -> {}", dtype, a, b);
        }
        let again = encode(dtype, &x, 256, weighted.then_some(&im[..]));
        prop_assert_eq!(encode(dtype, &x, 256, weighted.then_some(&im[..])), again);
    }
}
