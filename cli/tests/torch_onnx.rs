//! `wharf convert` / `wharf inspect` on PyTorch and ONNX inputs, and refusal of attack files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wharf_converters::AnySource;
use wharf_core::TensorSource;

fn wharf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .unwrap()
}

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(p)
}

fn same_tensors(a: &AnySource, b: &AnySource) {
    let mut names: Vec<_> = a.tensors().iter().map(|m| m.name.clone()).collect();
    names.sort();
    let mut other: Vec<_> = b.tensors().iter().map(|m| m.name.clone()).collect();
    other.sort();
    assert_eq!(names, other);
    for n in &names {
        assert_eq!(a.meta(n), b.meta(n), "{n}");
        assert_eq!(a.bytes(n).unwrap(), b.bytes(n).unwrap(), "{n}");
    }
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
    same_tensors(&got, &want);
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
