//! `wharf convert DEEPSEEK_FP8_DIR -o OUT --dtype bf16|f32`: the CPU replacement for DeepSeek's
//! `fp8_cast_bf16.py`. Every FP8 weight must come out as `decode(q) * scale_inv` per 128x128
//! block (computed here with the quantizers' codec from the source bytes), rounded to BF16 to
//! nearest even; the folder must be complete (config without `quantization_config`, tokenizer).

use std::path::{Path, PathBuf};
use std::process::Command;

use wharf_converters::safetensors::SafetensorsSource;
use wharf_core::cast::{decode_f32, f32_to_bf16_bits};
use wharf_core::{DType, TensorSource};
use wharf_quantizers::fp8::{Fp8Format, dequantize_blocks};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures")
        .join(p)
}

fn floats(src: &SafetensorsSource, name: &str) -> Vec<f32> {
    let m = src.require(name).unwrap();
    let mut out = vec![0f32; m.numel().unwrap() as usize];
    decode_f32(m.dtype, &src.bytes(name).unwrap(), &mut out).unwrap();
    out
}

/// What the converted tensor `name` must hold, in f32, before the output cast.
fn expected(src: &SafetensorsSource, name: &str) -> Vec<f32> {
    let m = src.require(name).unwrap();
    if m.dtype != DType::F8E4M3 {
        return floats(src, name);
    }
    let d = m.shape.dims();
    let s = floats(src, &format!("{name}_scale_inv"));
    let q = src.bytes(name).unwrap();
    let (r, c) = (d[0] as usize, d[1] as usize);
    dequantize_blocks(Fp8Format::E4M3, &q, &s, r, c, (128, 128)).unwrap()
}

fn convert(dtype: &str, out: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("convert")
        .arg(fixture("models/deepseek_v3_fp8"))
        .arg("-o")
        .arg(out)
        .args(["--dtype", dtype])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn check(dtype: &str, want_dtype: DType) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    convert(dtype, &out);
    let src = SafetensorsSource::open_dir(fixture("models/deepseek_v3_fp8")).unwrap();
    let ours = SafetensorsSource::open_dir(&out).unwrap();
    let dense = SafetensorsSource::open_dir(fixture("models/deepseek_v3")).unwrap();
    let mut names: Vec<_> = ours.tensors().iter().map(|m| m.name.clone()).collect();
    let mut want_names: Vec<_> = dense.tensors().iter().map(|m| m.name.clone()).collect();
    names.sort();
    want_names.sort();
    assert_eq!(names, want_names, "no scale tensors, every weight present");
    for m in ours.tensors() {
        assert_eq!(m.dtype, want_dtype, "{}", m.name);
        assert_eq!(m.shape, dense.require(&m.name).unwrap().shape, "{}", m.name);
        let want = expected(&src, &m.name);
        let got = ours.bytes(&m.name).unwrap();
        let want: Vec<u8> = match want_dtype {
            DType::BF16 => want
                .iter()
                .flat_map(|&x| f32_to_bf16_bits(x).to_le_bytes())
                .collect(),
            _ => want.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        assert!(*got == want[..], "{}: bytes", m.name);
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let source: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("models/deepseek_v3_fp8/config.json")).unwrap(),
    )
    .unwrap();
    assert!(config.get("quantization_config").is_none());
    let mut source = source;
    source
        .as_object_mut()
        .unwrap()
        .remove("quantization_config");
    assert_eq!(config, source, "config otherwise unchanged");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(fixture("models/deepseek_v3_fp8").join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn deepseek_fp8_to_bf16() {
    check("bf16", DType::BF16);
}

#[test]
fn deepseek_fp8_to_f32() {
    check("f32", DType::F32);
}

#[test]
fn inspect_lists_logical_fp8_weights() {
    let o = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("inspect")
        .arg(fixture("models/deepseek_v3_fp8"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tensors = r["tensors"].as_array().unwrap();
    assert!(tensors.iter().all(|t| {
        let n = t["name"].as_str().unwrap();
        !n.ends_with("_scale_inv")
    }));
    let q = tensors
        .iter()
        .find(|t| t["name"] == "model.layers.0.self_attn.q_a_proj.weight")
        .unwrap();
    assert_eq!(q["dtype"], "F8_E4M3");
    assert_eq!(q["storage"], "fp8-block 128x128");
    assert_eq!(q["shape"], serde_json::json!([256, 256]));
    assert_eq!(q["bytes"], 256 * 256 + 2 * 2 * 4);
}
