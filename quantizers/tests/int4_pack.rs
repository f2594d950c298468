//! INT4 packing and arithmetic on hand-computed vectors, plus round trips.

use wharf_core::DType;
use wharf_quantizers::int4::{self, CtParams, GptqFormat, GptqParams};

/// Nibble `i` of a packed word.
fn nib(w: i32, i: usize) -> u32 {
    (w as u32 >> (4 * i)) & 0xF
}

/// One 128-wide group whose codes depend on BF16's double rounding (found with ml_dtypes:
/// `3 / 7.5` is 0.40039062 in BF16; `1.3984375 / s` = 3.4927 rounds to 3.5 in BF16, then to 4).
fn double_rounding_group() -> Vec<f32> {
    let mut g = vec![0f32; 128];
    g[..4].copy_from_slice(&[3.0, 1.3984375, 1.8046875, -3.0]);
    g
}

#[test]
fn w4a16_bf16_divides_in_bf16() {
    let packed = int4::quantize_pack(
        &double_rounding_group(),
        1,
        128,
        CtParams::w4a16(DType::BF16),
    )
    .unwrap();
    assert_eq!(packed.weight_scale, vec![0.400_390_62]);
    let w = packed.weight_packed[0];
    // Signed codes 7, 4, 4, -8, stored +8.
    assert_eq!(
        [nib(w, 0), nib(w, 1), nib(w, 2), nib(w, 3)],
        [15, 12, 12, 0]
    );
    assert_eq!(nib(w, 4), 8);
    assert_eq!(packed.weight_shape, [1, 128]);
}

#[test]
fn w4a16_f32_rounds_once() {
    let packed = int4::quantize_pack(
        &double_rounding_group(),
        1,
        128,
        CtParams::w4a16(DType::F32),
    )
    .unwrap();
    assert_eq!(packed.weight_scale, vec![3.0f32 / 7.5]);
    let w = packed.weight_packed[0];
    assert_eq!(
        [nib(w, 0), nib(w, 1), nib(w, 2), nib(w, 3)],
        [15, 11, 13, 0]
    );
}

#[test]
fn asymmetric_hand_computed() {
    // lo = -1, hi = 2: scale = 3 / 15 = 0.2, zp = -8 - (-1 / 0.2) = -3.
    let mut row = vec![0f32; 128];
    row[..3].copy_from_slice(&[-1.0, 2.0, 0.5]);
    let p = CtParams {
        symmetric: false,
        ..CtParams::w4a16(DType::F32)
    };
    // Two identical rows: the zero points of both rows share one dim-0 word.
    let src = [row.clone(), row].concat();
    let packed = int4::quantize_pack(&src, 2, 128, p).unwrap();
    assert_eq!(packed.weight_scale, vec![0.2, 0.2]);
    let zp = packed.weight_zero_point.clone().unwrap();
    assert_eq!(zp.len(), 1);
    assert_eq!([nib(zp[0], 0), nib(zp[0], 1), nib(zp[0], 2)], [5, 5, 0]);
    let w = packed.weight_packed[0];
    // -1 -> -5 - 3 = -8; 2 -> 10 - 3 = 7; 0.5 -> 2.5 - 3 = -0.5 -> 0 (ties to even); 0 -> -3.
    assert_eq!([nib(w, 0), nib(w, 1), nib(w, 2), nib(w, 3)], [0, 15, 8, 5]);
    let back = int4::dequantize_pack(
        &packed.weight_packed,
        &packed.weight_scale,
        Some(&zp),
        [2, 128],
        p,
    )
    .unwrap();
    assert_eq!(&back[..4], &[(-5.0f32) * 0.2, 10.0 * 0.2, 3.0 * 0.2, 0.0]);
}

/// Packs `[K, N]` codes the way AutoGPTQ does (8 rows of K per word, row i at bits 4i).
fn gptq_pack(codes: &[u32], k: usize, n: usize) -> Vec<i32> {
    let mut out = vec![0u32; k / 8 * n];
    for kk in 0..k {
        for nn in 0..n {
            out[kk / 8 * n + nn] |= codes[kk * n + nn] << (4 * (kk % 8));
        }
    }
    out.into_iter().map(|w| w as i32).collect()
}

#[test]
fn gptq_v1_and_v2_against_the_formula() {
    let (k, n, group) = (32, 16, 16);
    let codes: Vec<u32> = (0..k * n).map(|i| ((i * 7 + i / 5) % 16) as u32).collect();
    let zeros: Vec<u32> = (0..2 * n).map(|i| (i % 15) as u32).collect();
    let mut qzeros = vec![0u32; 2 * n / 8];
    for (i, &z) in zeros.iter().enumerate() {
        qzeros[i / 8] |= z << (4 * (i % 8));
    }
    let qzeros: Vec<i32> = qzeros.into_iter().map(|w| w as i32).collect();
    let scales: Vec<f32> = (0..2 * n).map(|i| 0.01 * (i + 1) as f32).collect();
    let qweight = gptq_pack(&codes, k, n);
    for (format, bump) in [(GptqFormat::V1, 1), (GptqFormat::V2, 0)] {
        let p = GptqParams {
            bits: 4,
            group: Some(group),
            format,
            in_features: k,
            out_features: n,
        };
        let w = int4::dequantize_gptq(p, &qweight, &qzeros, &scales, None).unwrap();
        for nn in 0..n {
            for kk in 0..k {
                let g = kk / group;
                let z = zeros[g * n + nn] as i32 + bump;
                let want = (codes[kk * n + nn] as i32 - z) as f32 * scales[g * n + nn];
                assert_eq!(w[nn * k + kk], want, "n {nn} k {kk}");
            }
        }
    }
}

#[test]
fn ct_round_trip_and_thread_independence() {
    let (rows, cols) = (24, 384);
    let src: Vec<f32> = (0..rows * cols)
        .map(|i| ((i as f32) * 0.731).sin() * 0.05)
        .collect();
    for symmetric in [true, false] {
        let p = CtParams {
            symmetric,
            ..CtParams::w4a16(DType::F32)
        };
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| int4::quantize_pack(&src, rows, cols, p))
                .unwrap()
        };
        let packed = run(1);
        assert_eq!(packed, run(3));
        let zp = packed.weight_zero_point.as_deref();
        let back = int4::dequantize_pack(
            &packed.weight_packed,
            &packed.weight_scale,
            zp,
            [rows, cols],
            p,
        )
        .unwrap();
        for (g, (a, b)) in src.chunks(128).zip(back.chunks(128)).enumerate() {
            let step = packed.weight_scale[g];
            assert!(
                a.iter()
                    .zip(b)
                    .all(|(x, y)| (x - y).abs() <= step * 0.5 + 1e-7)
            );
        }
    }
}
