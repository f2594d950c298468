//! The `wharf` binary's contract: exit codes, one-sentence errors, nothing left on failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn wharf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .unwrap()
}

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures")
        .join(p)
}

#[test]
fn bad_input_exits_2_names_the_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.safetensors");
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&bad, bytes).unwrap();
    let out = dir.path().join("out.gguf");
    let o = wharf(&[
        "convert",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.safetensors") && err.contains("truncated"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the input remains"
    );
}

#[test]
fn convert_refuses_to_overwrite_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("m.safetensors");
    std::fs::copy(fixture("models/llama/model.safetensors"), &src).unwrap();
    let o = wharf(&[
        "convert",
        src.to_str().unwrap(),
        "-o",
        src.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn hf_folder_converts_to_gguf_and_inspects_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.gguf");
    let o = wharf(&[
        "convert",
        fixture("models/qwen2").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = wharf(&["inspect", out.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "gguf");
    assert_eq!(v["architecture"], "qwen2");
    assert!(
        v["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "blk.0.attn_q.bias")
    );
}

#[test]
fn demo_exports_and_verifies_every_target() {
    let o = wharf(&["demo"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for target in ["h800", "apple-silicon", "pi5", "pi4"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(target) && l.trim_end().ends_with(" ok")),
            "{target} missing in\n{text}"
        );
    }
}

#[test]
fn quantizing_a_non_finite_weight_is_refused_naming_the_tensor() {
    // RELIABILITY.md S17: NaN/Inf must never become a NaN scale.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("nan-llama");
    std::fs::create_dir(&model).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture("models/llama").join(f), model.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(fixture("models/llama/model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let name = "model.layers.1.mlp.down_proj.weight";
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize + 8 + n;
    bytes[start + 40..start + 44].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(model.join("model.safetensors"), bytes).unwrap();
    for scheme in ["gguf:Q4_0", "fp8-block"] {
        let out = dir.path().join("out");
        let o = wharf(&[
            "quantize",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--scheme",
            scheme,
        ]);
        assert_eq!(o.status.code(), Some(2), "{scheme}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("not finite"), "{scheme}: {err}");
        assert!(
            err.contains("blk.1.ffn_down") || err.contains(name),
            "{scheme}: {err}"
        );
        assert!(!out.exists(), "{scheme}");
    }
}

#[test]
fn semantic_gguf_metadata_is_refused_where_it_is_consumed() {
    // RELIABILITY.md G16: a well-formed container whose metadata lies (a million blocks, a
    // BOS id past the vocabulary, scores typed u8) is refused by the model description.
    let f = fixture("../attacks/gguf/G16_semantic.gguf");
    let o = wharf(&["infer", f.to_str().unwrap(), "--ids", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("G16_semantic.gguf"));
}

#[test]
fn every_format_attack_file_exits_2_and_writes_nothing() {
    // RELIABILITY.md S1-S19, I1-I5, G1-G17 (the legal `_ok_` cases, G16 and I5 are accepted by
    // the readers; see converters/tests/attacks_formats.rs).
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for kind in ["safetensors", "index", "gguf"] {
        let root = fixture("../attacks").join(kind);
        for e in std::fs::read_dir(root).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.contains("_ok_") || name.starts_with("G16") || name.starts_with("I5") {
                continue;
            }
            let out = dir.path().join("out.safetensors");
            let o = wharf(&["convert", p.to_str().unwrap(), "-o", out.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(2), "{name}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains(&name), "{name}: {err}");
            assert!(!err.contains("panicked"), "{name}: {err}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{name}");
            n += 1;
        }
    }
    assert!(n >= 60, "only {n} attack files");
}
