//! Every fixture model against what transformers computed (`golden/<model>/`): max abs logit
//! error ≤ 1e-3 on all 16 positions, and the same 8 greedy tokens.

// The measured errors are printed for `--nocapture` runs and the report.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};

use wharf_reference::{Model, npy};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures")
}

fn golden_ids(model: &str) -> Vec<u32> {
    let bytes = std::fs::read(data().join("golden").join(model).join("input_ids.npy")).unwrap();
    npy::decode(&bytes)
        .unwrap()
        .data
        .iter()
        .map(|&x| x as u32)
        .collect()
}

fn golden_logits(model: &str) -> npy::Array {
    let bytes = std::fs::read(data().join("golden").join(model).join("logits_all.npy")).unwrap();
    npy::decode(&bytes).unwrap()
}

fn greedy(model: &str) -> Vec<u32> {
    let j: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data().join("golden").join(model).join("golden.json")).unwrap(),
    )
    .unwrap();
    j["greedy_8_hf_generate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// Max abs difference between our logits and the golden ones.
fn max_err(model: &Model, golden: &str) -> f64 {
    let ids = golden_ids(golden);
    let want = golden_logits(golden);
    let got = model.logits(&ids).unwrap();
    assert_eq!(want.shape, vec![got.n_pos, got.vocab], "{golden}: shape");
    got.data
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max)
}

fn check(dir: &str, golden: &str) {
    let model = Model::open(&data().join("models").join(dir)).unwrap();
    let err = max_err(&model, golden);
    eprintln!("{dir}: max abs logit error {err:.3e}");
    assert!(err <= 1e-3, "{dir}: max abs logit error {err}");
    assert_eq!(
        model.generate(&golden_ids(golden), 8).unwrap(),
        greedy(golden),
        "{dir}: greedy"
    );
}

#[test]
fn llama() {
    check("llama", "llama");
}

#[test]
fn llama_tied_llama3_rope_mqa() {
    check("llama_tied", "llama_tied");
}

#[test]
fn llama_sharded() {
    check("llama_sharded", "llama_sharded");
}

#[test]
fn qwen2_biases() {
    check("qwen2", "qwen2");
}

#[test]
fn mistral_bf16() {
    check("mistral_bf16", "mistral_bf16");
}

#[test]
fn deepseek_v3_mla_moe() {
    check("deepseek_v3", "deepseek_v3");
}
