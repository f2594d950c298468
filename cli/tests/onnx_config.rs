//! ONNX exports and PyTorch folders as full HF models: `--config` names an ONNX export's
//! initializers back to HF names, so it converts, runs and exports like the HF folder it came
//! from; a PyTorch folder converts to GGUF as its safetensors twin does.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wharf_converters::AnySource;
use wharf_tests::{assert_same_tensors, npy_f32};

const IDS: &str = "0,17,345,902,5,1000,77,256,511,3,640,129,888,42,700,13";

fn wharf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn fixture(p: &str) -> String {
    wharf_tests::fixture(p).display().to_string()
}

fn onnx() -> String {
    fixture("reference/onnx/llama_dynamo_noopt.onnx")
}

fn config() -> String {
    fixture("models/llama/config.json")
}

/// `wharf infer` of `model` (plus `extra` arguments) on the golden ids: max abs logit error
/// against `golden/llama`, and the greedy tokens against transformers' `generate`.
fn check_against_llama_golden(model: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("logits.npy");
    let mut args = vec!["infer", model];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--ids", IDS, "--max-new", "8", "--json", "--logits-out"]);
    args.push(out.to_str().unwrap());
    let o = wharf(&args);
    ok(&o);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("golden/llama/golden.json")).unwrap())
            .unwrap();
    assert_eq!(r["generated"], golden["greedy_8_hf_generate"]);
    let got = npy_f32(&out);
    let want = npy_f32(Path::new(&fixture("golden/llama/logits_all.npy")));
    assert_eq!(got.len(), want.len());
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err <= 1e-3, "{model}: max abs logit error {err}");
}

fn convert_f32(src: &str, extra: &[&str], out: &Path) {
    let mut args = vec!["convert", src];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--dtype", "f32", "-o", out.to_str().unwrap()]);
    ok(&wharf(&args));
}

#[test]
fn onnx_export_with_config_converts_to_the_hf_folders_gguf_and_matches_the_golden() {
    let dir = tempfile::tempdir().unwrap();
    let from_onnx = dir.path().join("onnx.gguf");
    let from_hf = dir.path().join("hf.gguf");
    convert_f32(&onnx(), &["--config", &config()], &from_onnx);
    convert_f32(&fixture("models/llama"), &[], &from_hf);
    // Same names, order, metadata (tokenizer from the config's folder) and bytes.
    assert!(std::fs::read(&from_onnx).unwrap() == std::fs::read(&from_hf).unwrap());
    check_against_llama_golden(from_onnx.to_str().unwrap(), &[]);
}

#[test]
fn onnx_export_with_config_runs_directly() {
    check_against_llama_golden(&onnx(), &["--config", &config()]);
    let o = wharf(&[
        "infer",
        &onnx(),
        "--config",
        &config(),
        "--prompt",
        "Hello world, 42!",
        "--max-new",
        "1",
        "--json",
    ]);
    ok(&o);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        r["input_ids"][0], 0,
        "tokenized with the config folder's tokenizer"
    );
}

#[test]
fn onnx_export_with_config_lists_hf_names_and_warns_of_dropped_buffers() {
    let o = wharf(&["inspect", &onnx(), "--config", &config(), "--json"]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["architecture"], "llama");
    let names: Vec<&str> = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 21, "inv_freq left out");
    assert!(names.contains(&"model.layers.1.mlp.down_proj.weight"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("m.model.rotary_emb.inv_freq"), "{err}");
}

#[test]
fn onnx_export_with_config_exports_a_bundle_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let o = wharf(&[
        "export",
        &onnx(),
        "--config",
        &config(),
        "--target",
        "pi5",
        "-o",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.contains("warning: source: left out") && summary.contains("inv_freq"),
        "the export names the buffers it left out: {summary}"
    );
    ok(&wharf(&["verify", out.to_str().unwrap()]));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["source"]["format"], "onnx");
    let files: Vec<&str> = m["source"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"llama_dynamo_noopt.onnx"), "{files:?}");
    assert!(files.contains(&"llama_dynamo_noopt.onnx.data"), "{files:?}");
    assert!(
        files.iter().any(|f| f.ends_with("config.json")),
        "{files:?}"
    );
}

#[test]
fn pytorch_folder_converts_to_gguf_with_the_safetensors_folders_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let from_bin = dir.path().join("bin.gguf");
    let from_st = dir.path().join("st.gguf");
    convert_f32(&fixture("models/llama_bin"), &[], &from_bin);
    convert_f32(&fixture("models/llama"), &[], &from_st);
    let (a, b) = (
        AnySource::open(&from_bin).unwrap(),
        AnySource::open(&from_st).unwrap(),
    );
    assert_same_tensors(&a, &b);
    check_against_llama_golden(from_bin.to_str().unwrap(), &[]);
}

#[test]
fn a_config_is_refused_where_it_cannot_apply() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.gguf");
    let out_s = out.to_str().unwrap();
    // An HF folder carries its own config.json.
    let o = wharf(&[
        "convert",
        &fixture("models/llama"),
        "--config",
        &config(),
        "-o",
        out_s,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("config"));
    // An ONNX model whose initializers are not this model's weights.
    let o = wharf(&[
        "convert",
        &fixture("reference/onnx/handmade_mlp.onnx"),
        "--config",
        &config(),
        "-o",
        out_s,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("handmade_mlp.onnx"), "{err}");
    assert!(err.contains("model.embed_tokens.weight"), "{err}");
    // Without a config, an ONNX export has no architecture for GGUF metadata.
    let o = wharf(&["convert", &onnx(), "-o", out_s]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--config"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn onnx_with_config_and_pytorch_folder_quantize_like_the_hf_folder() {
    let dir = tempfile::tempdir().unwrap();
    let q = |src: &str, extra: &[&str], scheme: &str, out: &Path| {
        let mut args = vec!["quantize", src];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--scheme", scheme, "-o", out.to_str().unwrap()]);
        ok(&wharf(&args));
    };
    let (a, b) = (dir.path().join("onnx.gguf"), dir.path().join("hf.gguf"));
    q(&onnx(), &["--config", &config()], "gguf:Q4_K_M", &a);
    q(&fixture("models/llama"), &[], "gguf:Q4_K_M", &b);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    let (a, b) = (dir.path().join("bin-fp8"), dir.path().join("st-fp8"));
    q(&fixture("models/llama_bin"), &[], "fp8-block", &a);
    q(&fixture("models/llama"), &[], "fp8-block", &b);
    let file = "model.safetensors";
    assert!(std::fs::read(a.join(file)).unwrap() == std::fs::read(b.join(file)).unwrap());
}
