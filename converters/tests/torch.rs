//! PyTorch zip checkpoints: the fixture `llama_bin` (transformers' `save_pretrained(...,
//! safe_serialization=False)` of the same weights as `models/llama`) reads back byte for byte.

use std::path::{Path, PathBuf};

use wharf_converters::torch::TorchSource;
use wharf_converters::{AnySource, Format};
use wharf_core::TensorSource;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures")
}

fn assert_same(a: &dyn TensorSource, b: &dyn TensorSource) {
    let mut names: Vec<_> = a.tensors().iter().map(|m| m.name.clone()).collect();
    let mut other: Vec<_> = b.tensors().iter().map(|m| m.name.clone()).collect();
    names.sort();
    other.sort();
    assert_eq!(names, other);
    for n in &names {
        assert_eq!(a.meta(n), b.meta(n), "{n}");
        assert_eq!(a.bytes(n).unwrap(), b.bytes(n).unwrap(), "{n}");
    }
}

#[test]
fn llama_bin_equals_llama_safetensors() {
    let st = AnySource::open(data().join("models/llama")).unwrap();
    let bin = TorchSource::open_file(data().join("models/llama_bin/pytorch_model.bin")).unwrap();
    assert_eq!(bin.tensors().len(), st.tensors().len());
    assert_same(&bin, &st);
}

#[test]
fn llama_bin_folder_opens_with_its_config() {
    let src = AnySource::open(data().join("models/llama_bin")).unwrap();
    assert_eq!(src.format(), Format::HfTorchFolder);
    assert!(src.spec().is_some());
    let st = AnySource::open(data().join("models/llama")).unwrap();
    assert_same(&src, &st);
}

#[test]
fn sharded_index_folder_reads_and_checks_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let bin = data().join("models/llama_bin/pytorch_model.bin");
    std::fs::copy(&bin, dir.path().join("pytorch_model-00001-of-00001.bin")).unwrap();
    let one = TorchSource::open_file(&bin).unwrap();
    let map: serde_json::Map<String, serde_json::Value> = one
        .tensors()
        .iter()
        .map(|m| (m.name.clone(), "pytorch_model-00001-of-00001.bin".into()))
        .collect();
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    let index_path = dir.path().join("pytorch_model.bin.index.json");
    std::fs::write(&index_path, index.to_string()).unwrap();
    let src = AnySource::open(dir.path()).unwrap();
    assert_eq!(src.format(), Format::HfTorchFolder);
    assert_same(&src, &one);

    // A tensor the index does not list is an inconsistency (I4).
    let mut partial = map.clone();
    let first = one.tensors().first().unwrap().name.clone();
    partial.remove(&first);
    let index = serde_json::json!({"weight_map": partial});
    std::fs::write(&index_path, index.to_string()).unwrap();
    let e = AnySource::open(dir.path()).unwrap_err();
    assert!(
        matches!(e.kind(), wharf_converters::ErrorKind::Index(_)),
        "{e}"
    );
}
