//! Recognition and error cases on small in-memory sources (the fixture checkpoints are covered
//! by `converters/tests/storage.rs`).

use std::borrow::Cow;

use serde_json::json;
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::fp8::{self, Fp8Options};
use wharf_quantizers::mlx::{self as qmlx, MlxParams};

use super::{QuantizedView, Storage};
use crate::ErrorKind;

struct Mem(Vec<(TensorMeta, Vec<u8>)>, Vec<TensorMeta>);

impl Mem {
    fn new(items: Vec<(&str, DType, Vec<u64>, Vec<u8>)>) -> Self {
        let v: Vec<_> = items
            .into_iter()
            .map(|(n, d, s, b)| (TensorMeta::new(n, d, s), b))
            .collect();
        let metas = v.iter().map(|(m, _)| m.clone()).collect();
        Mem(v, metas)
    }
}

impl TensorSource for Mem {
    fn tensors(&self) -> &[TensorMeta] {
        &self.1
    }
    fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
        let (_, b) = self.0.iter().find(|(m, _)| m.name == name).unwrap();
        Ok(Cow::Borrowed(b))
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A 200 x 130 matrix of varied values (partial blocks in both directions).
fn matrix() -> Vec<f32> {
    (0..200 * 130)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
        .collect()
}

fn deepseek_source() -> Mem {
    let w = matrix();
    let (q, s) = fp8::quantize_blocks(Fp8Options::DEEPSEEK, &w, 200, 130, (128, 128)).unwrap();
    Mem::new(vec![
        ("a.weight_scale_inv", DType::F32, vec![2, 2], f32_bytes(&s)),
        ("a.weight", DType::F8E4M3, vec![200, 130], q),
        ("norm.weight", DType::F32, vec![2], f32_bytes(&[1.5, -2.0])),
    ])
}

#[test]
fn deepseek_rows_match_the_whole_dequant() {
    let src = deepseek_source();
    let view = QuantizedView::new(&src, None).unwrap();
    let names: Vec<_> = view.tensors().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a.weight", "norm.weight"]);
    let t = view.get("a.weight").unwrap();
    assert!(matches!(
        t.storage,
        Storage::DeepseekFp8 {
            block: (128, 128),
            ..
        }
    ));
    let whole = view.read_f32("a.weight").unwrap();
    let (q, s) = (
        src.bytes("a.weight").unwrap(),
        src.bytes("a.weight_scale_inv").unwrap(),
    );
    let s: Vec<f32> = s
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let want = fp8::dequantize_blocks(fp8::Fp8Format::E4M3, &q, &s, 200, 130, (128, 128)).unwrap();
    assert_eq!(whole, want);
    for r in [0..1, 5..140, 127..129, 190..200, 7..7] {
        let part = view.read_rows("a.weight", r.clone()).unwrap();
        assert_eq!(part, whole[r.start * 130..r.end * 130], "rows {r:?}");
    }
    assert_eq!(view.read_f32("norm.weight").unwrap(), [1.5, -2.0]);
}

#[test]
fn rows_out_of_range_are_an_error() {
    let src = deepseek_source();
    let view = QuantizedView::new(&src, None).unwrap();
    assert!(view.read_rows("a.weight", 199..201).is_err());
    assert!(view.read_rows("nope", 0..1).is_err());
}

#[test]
fn missing_scale_is_an_error() {
    let src = Mem::new(vec![("a.weight", DType::F8E4M3, vec![2, 2], vec![0; 4])]);
    let e = QuantizedView::new(&src, None).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Malformed { .. }), "{e}");
    assert_eq!(e.tensor(), Some("a.weight"));
}

#[test]
fn misshaped_scale_is_an_error() {
    let src = Mem::new(vec![
        ("a.weight", DType::F8E4M3, vec![2, 2], vec![0; 4]),
        ("a.weight_scale_inv", DType::F32, vec![2, 1], vec![0; 8]),
    ]);
    let e = QuantizedView::new(&src, None).unwrap_err();
    assert!(e.to_string().contains("expected [1, 1]"), "{e}");
}

#[test]
fn orphan_companion_is_an_error() {
    let src = Mem::new(vec![
        ("a.weight", DType::F32, vec![1], vec![0; 4]),
        ("a.weight_scale_inv", DType::F32, vec![1, 1], vec![0; 4]),
    ]);
    let cfg = json!({"quantization_config": {"quant_method": "fp8"}});
    let e = QuantizedView::new(&src, Some(&cfg)).unwrap_err();
    assert_eq!(e.tensor(), Some("a.weight_scale_inv"), "{e}");
}

#[test]
fn unknown_quant_method_is_a_config_error() {
    let src = Mem::new(vec![("a", DType::F32, vec![1], vec![0; 4])]);
    let cfg = json!({"quantization_config": {"quant_method": "bitsandbytes"}});
    let e = QuantizedView::new(&src, Some(&cfg)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Config(_)), "{e}");
}

fn mlx_source(group: usize, bits: u32) -> (Mem, Vec<f32>) {
    let w: Vec<f32> = (0..6 * 128).map(|i| (i as f32 * 0.37).sin()).collect();
    let p = MlxParams::new(group, bits).unwrap();
    let q = qmlx::quantize(&w, p, DType::BF16).unwrap();
    let deq = qmlx::dequantize(&q.weight, &q.scales, &q.biases, p, DType::BF16).unwrap();
    let words: Vec<u8> = q.weight.iter().flat_map(|x| x.to_le_bytes()).collect();
    let g = (128 / group) as u64;
    let src = Mem::new(vec![
        (
            "l.weight",
            DType::U32,
            vec![2, 3, (128 * bits / 32) as u64],
            words,
        ),
        ("l.scales", DType::BF16, vec![2, 3, g], q.scales_bytes()),
        ("l.biases", DType::BF16, vec![2, 3, g], q.biases_bytes()),
    ]);
    (src, deq)
}

#[test]
fn mlx_layer_override_and_rows() {
    let (src, deq) = mlx_source(32, 3);
    let cfg =
        json!({"quantization": {"group_size": 64, "bits": 4, "l": {"group_size": 32, "bits": 3}}});
    let view = QuantizedView::new(&src, Some(&cfg)).unwrap();
    let t = view.get("l.weight").unwrap();
    assert_eq!(t.meta.shape.dims(), [2, 3, 128]);
    assert_eq!(view.read_f32("l.weight").unwrap(), deq);
    assert_eq!(
        view.read_rows("l.weight", 2..5).unwrap(),
        deq[2 * 128..5 * 128]
    );
}

#[test]
fn mlx_without_config_is_an_error() {
    let (src, _) = mlx_source(64, 4);
    assert!(QuantizedView::new(&src, None).is_err());
    let cfg = json!({"quantization": {"group_size": 64, "bits": 8}});
    let e = QuantizedView::new(&src, Some(&cfg)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Malformed { .. }), "{e}");
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn ct_pack_quantized_asymmetric_rows() {
    use wharf_quantizers::int4::{self, CtParams};
    let (rows, cols) = (20, 256);
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| (i as f32 * 0.11).cos() + 0.3)
        .collect();
    let p = CtParams {
        symmetric: false,
        ..CtParams::w4a16(DType::F32)
    };
    let q = int4::quantize_pack(&w, rows, cols, p).unwrap();
    let zp = q.weight_zero_point.clone().unwrap();
    let src = Mem::new(vec![
        (
            "l.weight_packed",
            DType::I32,
            vec![20, 32],
            i32_bytes(&q.weight_packed),
        ),
        (
            "l.weight_scale",
            DType::F32,
            vec![20, 2],
            f32_bytes(&q.weight_scale),
        ),
        (
            "l.weight_zero_point",
            DType::I32,
            vec![3, 2],
            i32_bytes(&zp),
        ),
        (
            "l.weight_shape",
            DType::I64,
            vec![2],
            [20i64, 256].iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
    ]);
    let cfg = json!({"quantization_config": {"quant_method": "compressed-tensors",
        "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int", "group_size": 128}}}}});
    let view = QuantizedView::new(&src, Some(&cfg)).unwrap();
    assert_eq!(view.tensors().len(), 1);
    let t = view.get("l.weight").unwrap();
    assert_eq!(t.meta.shape.dims(), [20, 256]);
    let want = int4::dequantize_pack(
        &q.weight_packed,
        &q.weight_scale,
        Some(&zp),
        [rows, cols],
        p,
    )
    .unwrap();
    assert_eq!(view.read_f32("l.weight").unwrap(), want);
    assert_eq!(
        view.read_rows("l.weight", 9..17).unwrap(),
        want[9 * cols..17 * cols]
    );
}

#[test]
fn gptq_rows_are_the_logical_out_rows() {
    use wharf_quantizers::int4::{self, GptqFormat, GptqParams};
    let (k, n, g) = (64usize, 16usize, 32usize);
    let qweight: Vec<i32> = (0..k / 8 * n)
        .map(|i| (i as i32).wrapping_mul(0x2545_F491))
        .collect();
    let qzeros: Vec<i32> = (0..k / g * n / 8)
        .map(|i| (i as i32).wrapping_mul(0x1357_9BDF))
        .collect();
    let scales: Vec<f32> = (0..k / g * n).map(|i| 0.01 + i as f32 * 0.001).collect();
    let src = Mem::new(vec![
        ("l.qweight", DType::I32, vec![8, 16], i32_bytes(&qweight)),
        ("l.qzeros", DType::I32, vec![2, 2], i32_bytes(&qzeros)),
        ("l.scales", DType::F32, vec![2, 16], f32_bytes(&scales)),
    ]);
    let cfg = json!({"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 32}});
    let view = QuantizedView::new(&src, Some(&cfg)).unwrap();
    assert_eq!(view.get("l.weight").unwrap().meta.shape.dims(), [16, 64]);
    let p = GptqParams {
        bits: 4,
        group: Some(g),
        format: GptqFormat::V1,
        in_features: k,
        out_features: n,
    };
    let want = int4::dequantize_gptq(p, &qweight, &qzeros, &scales, None).unwrap();
    assert_eq!(
        view.read_rows("l.weight", 3..5).unwrap(),
        want[3 * k..5 * k]
    );
}
