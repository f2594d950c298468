//! `wharf quantize --scheme mlx4` against `mlx_lm.convert -q --q-group-size 64 --q-bits 4` of the
//! same models (`reference/mlx/*/digests.json`: dtype, shape and sha256 of every tensor), the
//! config and index equal in content, the same bytes at 1 and 2 threads, and the folder read
//! back through wharf's MLX storage reader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wharf_converters::hf::storage::QuantizedView;
use wharf_converters::safetensors::SafetensorsSource;
use wharf_core::TensorSource;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures")
        .join(p)
}

fn quantize(model: &str, scheme: &str, threads: &str, out: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("quantize")
        .arg(fixture(&format!("models/{model}")))
        .arg("-o")
        .arg(out)
        .args(["--scheme", scheme])
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// name -> {dtype, shape, sha256} of a folder, in the digests.json form.
fn digests(dir: &Path) -> BTreeMap<String, Value> {
    let src = SafetensorsSource::open_dir(dir).unwrap();
    assert_eq!(
        src.metadata().get("format").map(String::as_str),
        Some("mlx")
    );
    src.tensors()
        .iter()
        .map(|m| {
            let sum = Sha256::digest(&*src.bytes(&m.name).unwrap());
            let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
            let v = serde_json::json!({"dtype": m.dtype.name(), "shape": m.shape.dims(), "sha256": hex});
            (m.name.clone(), v)
        })
        .collect()
}

/// `ignore`: keys of the source config mlx-lm drops (DeepSeek routing keys it does not read;
/// wharf keeps them for transformers and llama.cpp).
fn same_as_mlx_lm(model: &str, reference: &str, ignore: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("t1"), dir.path().join("t2"));
    quantize(model, "mlx4", "1", &one);
    quantize(model, "mlx4", "2", &two);
    let refdir = fixture(&format!("reference/mlx/{reference}"));
    let want: BTreeMap<String, Value> = json(&refdir.join("digests.json"))["model.safetensors"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let got = digests(&one);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{model}: names"
    );
    for (name, w) in &want {
        assert_eq!(&got[name], w, "{model}: `{name}`");
    }
    assert_eq!(digests(&two), got, "{model}: 1 vs 2 threads");
    let mut want_cfg = json(&refdir.join("config.json"));
    let mut got_cfg = json(&one.join("config.json"));
    for k in ignore {
        want_cfg.as_object_mut().unwrap().remove(*k);
        got_cfg.as_object_mut().unwrap().remove(*k);
    }
    assert_eq!(got_cfg, want_cfg, "{model}: config");
    let index = "model.safetensors.index.json";
    assert_eq!(
        json(&one.join(index)),
        json(&refdir.join(index)),
        "{model}: index"
    );
    let src = SafetensorsSource::open_dir(&one).unwrap();
    let cfg = json(&one.join("config.json"));
    let view = QuantizedView::new(&src, Some(&cfg)).unwrap();
    assert!(view.is_quantized());
    let name = "model.layers.0.self_attn.o_proj.weight";
    assert_eq!(view.read_f32(name).unwrap().len(), 256 * 256);
}

#[test]
fn llama_mlx4() {
    same_as_mlx_lm("llama", "llama_4bit_g64", &[]);
}

#[test]
fn deepseek_v3_mlx4() {
    same_as_mlx_lm(
        "deepseek_v3",
        "deepseek_v3_4bit_g64",
        &["scoring_func", "moe_layer_freq", "topk_method"],
    );
}
