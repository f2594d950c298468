//! HF folder → GGUF against llama.cpp's own converter output (`reference/gguf/digests.json`):
//! every tensor's bytes and every metadata value must match.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use wharf_converters::AnySource;
use wharf_converters::gguf::{GgufFile, Value};
use wharf_converters::hf::{GgufOptions, HfToGguf, OutType};
use wharf_core::TensorSource;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures")
}

fn convert(model: &str, out_type: OutType, out: &Path) -> GgufFile {
    let dir = data().join("models").join(model);
    let src = AnySource::open(&dir).unwrap();
    let opts = GgufOptions {
        out: out_type,
        pre: None,
    };
    HfToGguf::new(&src, &opts)
        .unwrap()
        .write(out, None, &mut |_| {})
        .unwrap();
    GgufFile::open(out).unwrap()
}

fn hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The digest script's encoding of an array: `json.dumps(list, ensure_ascii=False)`.
fn array_digest(items: &[Value]) -> Option<String> {
    let parts: Option<Vec<String>> = items
        .iter()
        .map(|v| match v {
            Value::String(s) => serde_json::to_string(s).ok(),
            other => other.as_int().map(|i| i.to_string()),
        })
        .collect();
    Some(hex(format!("[{}]", parts?.join(", ")).as_bytes()))
}

fn same_value(ours: &Value, want: &Json) -> bool {
    if let Some(items) = ours.as_array() {
        return array_digest(items).as_deref() == want["sha256"].as_str();
    }
    let w = &want["value"];
    match ours {
        Value::String(s) => w.as_str() == Some(s),
        Value::Bool(b) => w.as_bool() == Some(*b),
        Value::F32(f) => w.as_f64().is_some_and(|x| x as f32 == *f),
        other => other.as_int().map(|i| i as i64) == w.as_i64(),
    }
}

fn check_against(reference: &str, ours: &GgufFile) {
    let digests: Json = serde_json::from_str(
        &std::fs::read_to_string(data().join("reference/gguf/digests.json")).unwrap(),
    )
    .unwrap();
    let want = &digests[reference];
    let wanted: HashMap<&str, &Json> = want["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    assert_eq!(ours.tensors().len(), wanted.len(), "tensor count");
    for m in ours.tensors() {
        let w = wanted
            .get(m.name.as_str())
            .unwrap_or_else(|| panic!("unexpected tensor {}", m.name));
        assert_eq!(w["type"].as_str(), Some(m.dtype.name()), "{}", m.name);
        assert_eq!(
            hex(&ours.bytes(&m.name).unwrap()),
            w["sha256"].as_str().unwrap(),
            "{} bytes",
            m.name
        );
    }
    for kv in want["kv"].as_array().unwrap() {
        let key = kv["key"].as_str().unwrap();
        let v = ours.get(key).unwrap_or_else(|| panic!("missing key {key}"));
        assert!(same_value(v, kv), "{key}: ours {v}, llama.cpp {kv}");
    }
}

#[test]
fn llama_f32_matches_llama_cpp_converter_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ours = convert("llama", OutType::F32, &dir.path().join("llama.gguf"));
    check_against("llama-f32.gguf", &ours);
}

#[test]
fn tied_llama3_rope_freqs_match_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let ours = convert("llama_tied", OutType::F32, &dir.path().join("t.gguf"));
    assert!(
        ours.meta("output.weight").is_none(),
        "tied output is not written"
    );
    let theirs =
        GgufFile::open(data().join("reference/gguf/llama_tied-llamacpp-Q4_K_M.gguf")).unwrap();
    assert_eq!(
        ours.bytes("rope_freqs.weight").unwrap(),
        theirs.bytes("rope_freqs.weight").unwrap()
    );
    for key in [
        "llama.attention.head_count_kv",
        "llama.rope.freq_base",
        "llama.context_length",
        "tokenizer.ggml.tokens",
    ] {
        assert_eq!(ours.get(key), theirs.get(key), "{key}");
    }
}

#[test]
fn deepseek_v3_layout_matches_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let ours = convert("deepseek_v3", OutType::F32, &dir.path().join("d.gguf"));
    let layout: Json = serde_json::from_str(
        &std::fs::read_to_string(data().join("reference/gguf/gguf_layout.json")).unwrap(),
    )
    .unwrap();
    let want = &layout["deepseek_v3-f32.gguf"];
    let names: Vec<String> = ours
        .infos()
        .iter()
        .map(|t| {
            let ne: Vec<u64> = t.meta.shape.dims().iter().rev().copied().collect();
            format!("{} {:?}", t.meta.name, ne)
        })
        .collect();
    let theirs: Vec<String> = want["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{} {}", t[0].as_str().unwrap(), t[2]))
        .map(|s| s.replace(",", ", "))
        .collect();
    assert_eq!(names, theirs);
    for (k, v) in want["kv"].as_object().unwrap() {
        if v.as_str().is_some_and(|s| s.starts_with("[array")) {
            continue;
        }
        let ours_v = ours.get(k).unwrap_or_else(|| panic!("missing {k}"));
        assert!(
            same_value(ours_v, &serde_json::json!({"value": v})),
            "{k}: ours {ours_v}, llama.cpp {v}"
        );
    }
}

#[test]
fn bf16_output_keeps_norms_f32() {
    let dir = tempfile::tempdir().unwrap();
    let ours = convert("llama", OutType::BF16, &dir.path().join("b.gguf"));
    let layout: Json = serde_json::from_str(
        &std::fs::read_to_string(data().join("reference/gguf/gguf_layout.json")).unwrap(),
    )
    .unwrap();
    for t in layout["llama-bf16.gguf"]["tensors"].as_array().unwrap() {
        let m = ours.meta(t[0].as_str().unwrap()).unwrap();
        assert_eq!(m.dtype.name(), t[1].as_str().unwrap(), "{}", m.name);
    }
    assert_eq!(ours.get("general.file_type"), Some(&Value::U32(32)));
}

#[test]
fn probe_hashes_match_llama_cpps_method() {
    // sha256(str(ids)) of llama.cpp's probe text, computed in Python with the `tokenizers`
    // library on each tokenizer.json (transformers 5.23's AutoTokenizer gives the same for the
    // llama fixtures; for Qwen2 it adds an NFC normalizer of its own, giving 64623377..., while
    // llama.cpp's table was made from tokenizer.json as stored). None of these is in the
    // table, so the regex fallback names them (gpt-2, confirmed by the llama.cpp digests above).
    for (m, want) in [
        (
            "llama",
            "10ecd0a2d9c389f3ea0f31718bd8fcf9ad53194b835c3ef6e71d2023724d189b",
        ),
        (
            "llama_tied",
            "43e6671bed70816051f2eb6523966fa164008a822267ab95f8d7d1a226458ddc",
        ),
        (
            "qwen2",
            "32c53a95961cbee08a334ec0ab11b9ef1072a0dd8408ca43c99ad0bbbde8f292",
        ),
    ] {
        let dir = data().join("models").join(m);
        assert_eq!(
            wharf_converters::hf::probe_hash(&dir).as_deref(),
            Some(want),
            "{m}"
        );
    }
}
