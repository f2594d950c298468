//! `wharf convert` / `wharf inspect` on PyTorch and ONNX inputs, and refusal of attack files.

use std::process::{Command, Output};

use wharf_converters::AnySource;
use wharf_tests::{assert_same_tensors, data};

fn wharf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn pytorch_bin_converts_to_identical_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    let bin = data("fixtures/models/llama_bin/pytorch_model.bin");
    let o = wharf(&[
        "convert",
        bin.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = AnySource::open(&out).unwrap();
    let want = AnySource::open(data("fixtures/models/llama")).unwrap();
    assert_same_tensors(&got, &want);
}

#[test]
fn pytorch_folder_inspects_with_architecture() {
    let o = wharf(&[
        "inspect",
        data("fixtures/models/llama_bin").to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "hf-pytorch");
    assert_eq!(v["architecture"], "llama");
    let o = wharf(&[
        "inspect",
        data("fixtures/models/llama_bin/pytorch_model.bin")
            .to_str()
            .unwrap(),
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("format:       pytorch"));
}

/// Each attack file: exit code 2, one error line naming the file, and nothing written.
fn refuses_all(sub: &str, ext: &str) {
    let mut files: Vec<_> = std::fs::read_dir(data(&format!("attacks/{sub}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x != "data"))
        .filter(|p| !p.file_name().unwrap().to_str().unwrap().starts_with("ok_"))
        .collect();
    files.sort();
    assert!(files.len() > 5);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join(format!("x.{ext}"));
    for f in files {
        let o = wharf(&["convert", f.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", f.display());
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name), "{err}");
        assert_eq!(
            std::fs::read_dir(out_dir.path()).unwrap().count(),
            0,
            "{name} left output"
        );
    }
}

#[test]
fn torch_attack_files_exit_2_and_write_nothing() {
    refuses_all("torch", "safetensors");
}

#[test]
fn onnx_attack_files_exit_2_and_write_nothing() {
    refuses_all("onnx", "safetensors");
}

#[test]
fn onnx_with_external_data_converts_and_inspects() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("llama.safetensors");
    let model = data("fixtures/reference/onnx/llama_dynamo_noopt.onnx");
    let o = wharf(&[
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = AnySource::open(&out).unwrap();
    let want = AnySource::open(&model).unwrap();
    assert_same_tensors(&got, &want);
    let o = wharf(&["inspect", model.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "onnx");
    assert_eq!(v["tensors"].as_array().unwrap().len(), 22);
}
