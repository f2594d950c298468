//! `wharf quantize` against llama-quantize's own outputs (kept whole in the fixtures): the same
//! tensors in the same order, the same type per tensor, the same bytes, the same metadata.

use std::path::{Path, PathBuf};
use std::process::Command;

use wharf_converters::gguf::GgufFile;
use wharf_core::TensorSource;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures")
        .join(p)
}

fn quantize(model: &str, scheme: &str, threads: &str, out: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "quantize",
            fixture(&format!("models/{model}")).to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--scheme", scheme])
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn same_as_llama_quantize(model: &str, mix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.gguf");
    quantize(model, &format!("gguf:{mix}"), "2", &out);
    let reference = fixture(&format!("reference/gguf/{model}-llamacpp-{mix}.gguf"));
    let (ours, theirs) = (
        GgufFile::open(&out).unwrap(),
        GgufFile::open(&reference).unwrap(),
    );
    let names = |f: &GgufFile| {
        f.tensors()
            .iter()
            .map(|m| (m.name.clone(), m.dtype))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&ours),
        names(&theirs),
        "{model} {mix}: tensor order and types"
    );
    for m in theirs.tensors() {
        assert!(
            ours.bytes(&m.name).unwrap() == theirs.bytes(&m.name).unwrap(),
            "{model} {mix}: `{}` bytes",
            m.name
        );
    }
    assert_eq!(ours.kvs(), theirs.kvs(), "{model} {mix}: metadata");
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&reference).unwrap(),
        "{model} {mix}: whole file"
    );
}

#[test]
fn llama_q4_0_is_byte_identical_to_llama_quantize() {
    same_as_llama_quantize("llama", "Q4_0");
}

#[test]
fn llama_q8_0_is_byte_identical_to_llama_quantize() {
    same_as_llama_quantize("llama", "Q8_0");
}

#[test]
fn llama_q4_k_m_is_byte_identical_to_llama_quantize() {
    same_as_llama_quantize("llama", "Q4_K_M");
}

#[test]
fn tied_llama_q4_k_m_is_byte_identical_to_llama_quantize() {
    same_as_llama_quantize("llama_tied", "Q4_K_M");
}

#[test]
fn output_is_the_same_at_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.gguf"), dir.path().join("b.gguf"));
    quantize("deepseek_v3", "gguf:Q4_K_M", "1", &a);
    quantize("deepseek_v3", "gguf:Q4_K_M", "2", &b);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
}
