//! Each fused kernel equals dequantize-then-[`dense`] bit for bit, on quantized rows and on raw
//! random block bytes (every nibble and scale pattern), over one to several blocks; and the
//! AVX2 build of each body equals its baseline build.

use wharf_core::DType;
use wharf_quantizers::ggml::{dequantize, quantize};

use super::{dense, dense_body, f32_row_body, kernel, kquants, legacy};

/// xorshift64: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const TYPES: [DType; 8] = [
    DType::F32,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q4K,
    DType::Q6K,
];

/// Byte offsets of a block's f16 scales.
fn f16_fields(dtype: DType) -> &'static [usize] {
    match dtype {
        DType::Q8_0 | DType::Q4_0 | DType::Q5_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4K => &[0, 2],
        DType::Q6K => &[208],
        _ => &[],
    }
}

/// Random block bytes with finite f16 scales in [-2, 2).
fn raw_blocks(dtype: DType, blocks: usize, rng: &mut Rng) -> Vec<u8> {
    let layout = dtype.layout();
    let mut bytes = rng.bytes(blocks * layout.bytes as usize);
    for b in bytes.chunks_exact_mut(layout.bytes as usize) {
        for &at in f16_fields(dtype) {
            let d = half::f16::from_f32(2.0 * rng.f32());
            b[at..at + 2].copy_from_slice(&d.to_le_bytes());
        }
    }
    bytes
}

fn check(dtype: DType, row: &[u8], x: &[f32]) {
    let mut w = vec![0f32; x.len()];
    dequantize(dtype, row, &mut w).unwrap();
    let fused = kernel(dtype).unwrap()(row, x);
    let expected = dense(&w, x);
    assert_eq!(fused.to_bits(), expected.to_bits(), "{dtype} {}", x.len());
    assert_eq!(expected.to_bits(), dense_body(&w, x).to_bits());
    let exact: f64 = w
        .iter()
        .zip(x)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    let scale: f64 = w.iter().zip(x).map(|(a, b)| f64::from((a * b).abs())).sum();
    assert!(
        (f64::from(fused) - exact).abs() <= 1e-5 * scale.max(1e-30),
        "{dtype}"
    );
}

#[test]
fn fused_equals_dequantize_then_dot() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for dtype in TYPES {
        let elems = dtype.layout().elems as usize;
        for blocks in [1, 2, 3, 7, 18] {
            let n = blocks * elems;
            let x = rng.f32s(n);
            let src = rng.f32s(n);
            let mut row = vec![0u8; dtype.row_bytes(n as u64).unwrap() as usize];
            quantize(dtype, &src, n, None, &mut row).unwrap();
            check(dtype, &row, &x);
            if dtype != DType::F32 {
                check(dtype, &raw_blocks(dtype, blocks, &mut rng), &x);
            }
        }
    }
}

#[test]
fn f32_rows_of_any_length() {
    let mut rng = Rng(7);
    for n in 0..=100 {
        let (w, x) = (rng.f32s(n), rng.f32s(n));
        let row: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let fused = kernel(DType::F32).unwrap()(&row, &x);
        assert_eq!(fused.to_bits(), dense(&w, &x).to_bits(), "{n}");
        assert_eq!(fused.to_bits(), f32_row_body(&row, &x).to_bits(), "{n}");
    }
}

#[test]
fn dispatched_equals_baseline_build() {
    type Pair = (DType, fn(&[u8], &[f32]) -> f32, fn(&[u8], &[f32]) -> f32);
    let pairs: [Pair; 7] = [
        (DType::Q8_0, legacy::q8_0, legacy::q8_0_body),
        (DType::Q4_0, legacy::q4_0, legacy::q4_0_body),
        (DType::Q4_1, legacy::q4_1, legacy::q4_1_body),
        (DType::Q5_0, legacy::q5_0, legacy::q5_0_body),
        (DType::Q5_1, legacy::q5_1, legacy::q5_1_body),
        (DType::Q4K, kquants::q4_k, kquants::q4_k_body),
        (DType::Q6K, kquants::q6_k, kquants::q6_k_body),
    ];
    let mut rng = Rng(11);
    for (dtype, fast, plain) in pairs {
        let blocks = 5;
        let x = rng.f32s(blocks * dtype.layout().elems as usize);
        let row = raw_blocks(dtype, blocks, &mut rng);
        assert_eq!(
            fast(&row, &x).to_bits(),
            plain(&row, &x).to_bits(),
            "{dtype}"
        );
    }
}

#[test]
fn f16_scales_read_as_half_reads_them() {
    for h in 0..=u16::MAX {
        let want = half::f16::from_bits(h).to_f32();
        let got = super::f16_at(&h.to_le_bytes(), 0);
        assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
    }
}

#[test]
fn no_kernel_for_other_types() {
    assert!(kernel(DType::F8E4M3).is_none()); // needs its scales: `fp8_block_row`
    assert!(kernel(DType::Q5K).is_none());
}
