//! The storage layer on the fixture checkpoints (`tests/data/fixtures`): every quantized
//! weight is recognised, its companions hidden, its logical shape is the dense model's, and its
//! dequantized values equal the quantizers' dequantizers applied to bytes read independently
//! (with the `safetensors` crate). The MLX reference folders are kept only as digests in the
//! repository; MLX reading is covered by the unit tests and by the `--scheme mlx4` round trip.

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};
use wharf_converters::hf::storage::{QuantizedView, Storage};
use wharf_converters::safetensors::SafetensorsSource;
use wharf_core::{DType, TensorSource};
use wharf_quantizers::fp8::{self, Fp8Format};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/fixtures/");

type Tensor = (Dtype, Vec<usize>, Vec<u8>);

/// Every tensor of a folder, read with the reference `safetensors` crate.
fn load(dir: &str) -> BTreeMap<String, Tensor> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(format!("{FIX}{dir}")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let buf = std::fs::read(&p).unwrap();
            for (n, t) in SafeTensors::deserialize(&buf).unwrap().tensors() {
                out.insert(n, (t.dtype(), t.shape().to_vec(), t.data().to_vec()));
            }
        }
    }
    out
}

fn config(dir: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{FIX}{dir}/config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(t: &Tensor) -> Vec<f32> {
    match t.0 {
        Dtype::F32 => {
            t.2.chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        }
        Dtype::BF16 => {
            t.2.chunks(2)
                .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
                .collect()
        }
        other => panic!("{other:?}"),
    }
}

/// Checks names and shapes against the dense model and values against `expect(name)`.
fn check(
    model: &str,
    dense: &str,
    expect: impl Fn(&BTreeMap<String, Tensor>, &str) -> Option<Vec<f32>>,
) {
    let src = SafetensorsSource::open_dir(format!("{FIX}{model}")).unwrap();
    let cfg = config(model);
    let view = QuantizedView::new(&src, Some(&cfg)).unwrap();
    let raw = load(model);
    let dense = load(dense);
    let logical: BTreeMap<_, _> = view
        .tensors()
        .iter()
        .map(|m| (m.name.clone(), m.clone()))
        .collect();
    assert_eq!(
        logical.keys().collect::<Vec<_>>(),
        dense.keys().collect::<Vec<_>>(),
        "{model}"
    );
    let mut quantized = 0;
    for (name, m) in &logical {
        let want_shape: Vec<u64> = dense[name].1.iter().map(|&d| d as u64).collect();
        assert_eq!(m.shape.dims(), want_shape, "{model}: {name}");
        let got = view.read_f32(name).unwrap();
        match expect(&raw, name) {
            Some(want) => {
                assert_eq!(m.dtype, DType::F32);
                assert_eq!(got, want, "{model}: {name}");
                quantized += 1;
            }
            None => {
                assert_eq!(view.get(name).unwrap().storage, Storage::Dense);
                assert_eq!(got, floats(&raw[name]), "{model}: {name}");
            }
        }
    }
    assert!(quantized > 0, "{model}: nothing quantized");
}

/// `decode(q) * scale` per 128x128 block, from the raw tensors.
fn block_dequant(raw: &BTreeMap<String, Tensor>, name: &str, suffix: &str) -> Option<Vec<f32>> {
    let (dt, shape, q) = &raw[name];
    if *dt != Dtype::F8_E4M3 {
        return None;
    }
    let s = floats(&raw[&format!("{name}{suffix}")]);
    Some(fp8::dequantize_blocks(Fp8Format::E4M3, q, &s, shape[0], shape[1], (128, 128)).unwrap())
}

#[test]
fn deepseek_v3_fp8() {
    check("models/deepseek_v3_fp8", "models/deepseek_v3", |r, n| {
        block_dequant(r, n, "_scale_inv")
    });
}

#[test]
fn llama_fp8_block() {
    check("models/llama_fp8_block", "models/llama", |r, n| {
        block_dequant(r, n, "_scale_inv")
    });
}

#[test]
fn llama_ct_fp8_block() {
    check("models/llama_ct_fp8_block", "models/llama", |r, n| {
        block_dequant(r, n, "_scale")
    });
}

#[test]
fn llama_ct_fp8_dynamic() {
    check("models/llama_ct_fp8_dynamic", "models/llama", |r, n| {
        let (dt, shape, q) = &r[n];
        if *dt != Dtype::F8_E4M3 {
            return None;
        }
        let s = floats(&r[&format!("{n}_scale")]);
        Some(fp8::dequantize_per_channel(Fp8Format::E4M3, q, &s, shape[0], shape[1]).unwrap())
    });
}
