//! `wharf quantize --scheme fp8-block|ct-fp8-block|fp8-channel` against the FP8 checkpoints the
//! reference tools made from the same f32 models: every tensor byte for byte, the config equal
//! in content, and the same bytes at 1 and 2 threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wharf_converters::safetensors::SafetensorsSource;
use wharf_core::TensorSource;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures")
        .join(p)
}

fn quantize(src: &Path, scheme: &str, threads: &str, out: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("quantize")
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(["--scheme", scheme])
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// name -> (dtype, shape, bytes) of a folder.
fn tensors(dir: &Path) -> BTreeMap<String, (String, Vec<u64>, Vec<u8>)> {
    let src = SafetensorsSource::open_dir(dir).unwrap();
    src.tensors()
        .iter()
        .map(|m| {
            let b = src.bytes(&m.name).unwrap().to_vec();
            (
                m.name.clone(),
                (m.dtype.name().to_owned(), m.shape.dims().to_vec(), b),
            )
        })
        .collect()
}

fn config(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

/// `ignore`: keys the reference config lacks that wharf keeps (compressed-tensors 0.20 saved
/// through transformers 5 drops the legacy `torch_dtype` / `rope_theta` / `rope_scaling`, which llama.cpp and
/// mlx-lm still read).
fn same_as_reference(model: &str, scheme: &str, reference: &str, ignore: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("t1"), dir.path().join("t2"));
    quantize(&fixture(&format!("models/{model}")), scheme, "1", &one);
    quantize(&fixture(&format!("models/{model}")), scheme, "2", &two);
    let theirs = tensors(&fixture(reference));
    let ours = tensors(&one);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (name, (dt, shape, bytes)) in &theirs {
        let (odt, oshape, obytes) = &ours[name];
        assert_eq!((odt, oshape), (dt, shape), "{reference}: {name}");
        assert!(obytes == bytes, "{reference}: `{name}` bytes differ");
    }
    assert!(tensors(&two) == ours, "{scheme}: 1 vs 2 threads");
    let mut want = config(&fixture(reference));
    let mut got = config(&one);
    for k in ignore {
        want.as_object_mut().unwrap().remove(*k);
        got.as_object_mut().unwrap().remove(*k);
    }
    assert_eq!(got, want, "{reference}: config");
    assert!(one.join("tokenizer.json").is_file());
}

/// DeepSeek's rule computed by torch (`xtask/scripts/gen_fp8_block_reference.py`), partial
/// blocks included: `kv_a_proj_with_mqa` [192, 256] has scales [2, 2], the lower row of blocks
/// scaled by its 64 real rows.
#[test]
fn deepseek_v3_fp8_block() {
    let reference = "reference/fp8/deepseek_v3_fp8_block";
    same_as_reference("deepseek_v3", "fp8-block", reference, &[]);
    let t = tensors(&fixture(reference));
    let scales = &t["model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv"];
    assert_eq!(scales.1, [2, 2]);
}

#[test]
fn llama_fp8_block() {
    same_as_reference("llama", "fp8-block", "models/llama_fp8_block", &[]);
}

#[test]
fn llama_ct_fp8_block() {
    same_as_reference(
        "llama",
        "ct-fp8-block",
        "models/llama_ct_fp8_block",
        &["torch_dtype", "rope_theta", "rope_scaling"],
    );
}

#[test]
fn llama_ct_fp8_dynamic() {
    same_as_reference(
        "llama",
        "fp8-channel",
        "models/llama_ct_fp8_dynamic",
        &["torch_dtype", "rope_theta", "rope_scaling"],
    );
}

/// A DeepSeek FP8 source is dequantized and re-quantized: block FP8 of block FP8 is a fixed
/// point (each block's amax code is ±448, so the scale and codes come back unchanged).
#[test]
fn fp8_source_requantizes_to_itself() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q");
    quantize(&fixture("models/deepseek_v3_fp8"), "fp8-block", "2", &out);
    let (ours, theirs) = (tensors(&out), tensors(&fixture("models/deepseek_v3_fp8")));
    for (name, t) in &theirs {
        if t.0 == "F8_E4M3" || name.ends_with("_scale_inv") {
            assert!(ours[name] == *t, "`{name}`");
        }
    }
}
