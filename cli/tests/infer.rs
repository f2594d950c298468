//! `wharf infer` and `wharf compare` on the fixture models.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use wharf_tests::npy_f32;

fn wharf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .unwrap()
}

fn fixture(p: &str) -> String {
    wharf_tests::fixture(p).display().to_string()
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

const IDS: &str = "0,17,345,902,5,1000,77,256,511,3,640,129,888,42,700,13";

fn golden(model: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(&format!("golden/{model}/golden.json"))).unwrap())
        .unwrap()
}

#[test]
fn infer_ids_gives_golden_tokens_and_logits() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("logits.npy");
    let o = wharf(&[
        "infer",
        &fixture("models/llama"),
        "--ids",
        IDS,
        "--max-new",
        "8",
        "--logits-out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let r = json_of(&o);
    assert_eq!(r["generated"], golden("llama")["greedy_8_hf_generate"]);
    let got = npy_f32(&out);
    let want = npy_f32(Path::new(&fixture("golden/llama/logits_all.npy")));
    assert_eq!(got.len(), 16 * 1024);
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err <= 1e-3, "{err}");
    // Only the target is left: the temp file was renamed into place.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn infer_prompt_tokenizes_alike_from_hf_folder_and_gguf() {
    let hf = json_of(&wharf(&[
        "infer",
        &fixture("models/llama"),
        "--prompt",
        "Hello world, 42!",
        "--max-new",
        "1",
        "--json",
    ]));
    let gguf = json_of(&wharf(&[
        "infer",
        &fixture("reference/gguf/llama-llamacpp-Q8_0.gguf"),
        "--prompt",
        "Hello world, 42!",
        "--max-new",
        "1",
        "--json",
    ]));
    assert_eq!(hf["input_ids"], gguf["input_ids"]);
    assert_eq!(hf["input_ids"][0], 0);
}

#[test]
fn compare_same_model_is_zero_and_quantized_is_close_but_not_equal() {
    let same = json_of(&wharf(&[
        "compare",
        &fixture("models/llama"),
        &fixture("models/llama_sharded"),
        "--ids",
        IDS,
        "--json",
    ]));
    assert_eq!(same["kl_max"], 0.0);
    assert_eq!(same["top1_agreement"], 1.0);
    assert_eq!(same["greedy_agreement"], 1.0);
    assert_eq!(same["perplexity_a"], same["perplexity_b"]);
    let q8 = json_of(&wharf(&[
        "compare",
        &fixture("models/llama"),
        &fixture("reference/gguf/llama-llamacpp-Q8_0.gguf"),
        "--ids",
        IDS,
        "--json",
    ]));
    let kl = q8["kl_mean"].as_f64().unwrap();
    assert!(kl > 0.0 && kl < 0.01, "{kl}");
    assert!(q8["kl_max"].as_f64().unwrap() >= kl);
    assert!(q8["top1_agreement"].as_f64().unwrap() >= 0.5);
}

#[test]
fn compare_text_file_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("t.txt");
    std::fs::write(&text, "one two three four").unwrap();
    let r = json_of(&wharf(&[
        "compare",
        &fixture("models/llama"),
        &fixture("reference/gguf/llama-llamacpp-Q4_0.gguf"),
        "--text",
        text.to_str().unwrap(),
        "--json",
    ]));
    assert!(r["tokens"].as_u64().unwrap() > 2);
    // Different vocabularies, an out-of-range id, no input: bad input, exit 2.
    let o = wharf(&[
        "compare",
        &fixture("models/llama"),
        &fixture("models/qwen2"),
        "--ids",
        "1,2",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = wharf(&["infer", &fixture("models/llama"), "--ids", "5000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("5000"));
    let o = wharf(&["infer", &fixture("models/llama")]);
    assert_eq!(o.status.code(), Some(2));
}
