//! Every fixture model against what transformers computed (`golden/<model>/`): max abs logit
//! error ≤ 1e-3 on all 16 positions, and the same 8 greedy tokens.

// The measured errors are printed for `--nocapture` runs and the report.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};

use wharf_reference::{Model, npy};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures")
}

fn golden_json(model: &str) -> serde_json::Value {
    let path = data().join("golden").join(model).join("golden.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The prompt (`golden.json` `input_ids`; the FP8 goldens have no `input_ids.npy`).
fn golden_ids(model: &str) -> Vec<u32> {
    let ids = golden_json(model)["input_ids"].as_array().unwrap().clone();
    ids.iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

fn golden_logits(model: &str) -> npy::Array {
    let bytes = std::fs::read(data().join("golden").join(model).join("logits_all.npy")).unwrap();
    npy::decode(&bytes).unwrap()
}

/// The 8 greedy tokens (the FP8 goldens record only the full-recompute ones).
fn greedy(model: &str) -> Vec<u32> {
    let j = golden_json(model);
    j.get("greedy_8_hf_generate")
        .or_else(|| j.get("greedy_8_full_recompute"))
        .and_then(|v| v.as_array())
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
fn llama_bin() {
    // The PyTorch zip checkpoint, read as data only.
    check("llama_bin", "llama_bin");
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

#[test]
fn deepseek_v3_native_fp8_blocks() {
    check("deepseek_v3_fp8", "deepseek_v3_fp8");
}

#[test]
fn llama_deepseek_fp8_blocks() {
    check("llama_fp8_block", "llama_fp8_block");
}

#[test]
fn llama_compressed_tensors_fp8_block() {
    check("llama_ct_fp8_block", "llama_ct_fp8_block");
}

#[test]
fn llama_compressed_tensors_fp8_per_channel() {
    check("llama_ct_fp8_dynamic", "llama_ct_fp8_dynamic");
}
