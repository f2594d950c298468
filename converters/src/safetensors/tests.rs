//! Safetensors reader/writer tests: fixtures, round trips, and the attacks of RELIABILITY.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wharf_core::{DType, TensorMeta, TensorSink, TensorSource};

use super::*;
use crate::ErrorKind;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures/models")
}

/// A file from a raw header JSON and data bytes.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn open_bytes(bytes: &[u8]) -> crate::Result<SafetensorsSource> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.safetensors");
    std::fs::write(&p, bytes).unwrap();
    SafetensorsSource::open_file(&p)
}

fn kind_of(bytes: &[u8]) -> String {
    format!("{:?}", open_bytes(bytes).unwrap_err().kind())
}

#[test]
fn reads_fixture_and_sharded_fixture_identically() {
    let single = SafetensorsSource::open_dir(fixtures().join("llama")).unwrap();
    let sharded = SafetensorsSource::open_dir(fixtures().join("llama_sharded")).unwrap();
    assert!(sharded.files().len() > 1);
    assert_eq!(single.tensors().len(), sharded.tensors().len());
    for m in single.tensors() {
        let other = sharded.meta(&m.name).unwrap();
        assert_eq!(m, other);
        assert_eq!(
            single.bytes(&m.name).unwrap(),
            sharded.bytes(&m.name).unwrap()
        );
    }
}

#[test]
fn writer_round_trips_every_fixture_tensor_byte_for_byte() {
    let src = SafetensorsSource::open_dir(fixtures().join("llama")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let metas = src.tensors().to_vec();
    let mut w = SafetensorsWriter::create(&out, metas.clone(), &src.metadata()).unwrap();
    for m in &metas {
        let b = src.bytes(&m.name).unwrap();
        let (a, rest) = b.split_at(b.len() / 2);
        w.write(&m.name, a).unwrap();
        w.write(&m.name, rest).unwrap();
    }
    w.commit().unwrap();
    let back = SafetensorsSource::open_file(&out).unwrap();
    assert_eq!(back.tensors(), src.tensors());
    for m in &metas {
        assert_eq!(back.bytes(&m.name).unwrap(), src.bytes(&m.name).unwrap());
    }
    let header_len = u64::from_le_bytes(std::fs::read(&out).unwrap()[..8].try_into().unwrap());
    assert_eq!(header_len % 8, 0, "data buffer is 8-byte aligned");
}

#[test]
fn sharded_writer_splits_at_limit_and_reads_back() {
    let src = SafetensorsSource::open_dir(fixtures().join("llama")).unwrap();
    let plan = plan_shards(src.tensors(), 2 << 20).unwrap();
    assert!(plan.shards.len() > 1);
    let dir = tempfile::tempdir().unwrap();
    let mut w: Box<dyn TensorSink> = Box::new(ShardedWriter::new(
        dir.path(),
        plan.clone(),
        BTreeMap::new(),
    ));
    for m in src.tensors() {
        w.write(&m.name, &src.bytes(&m.name).unwrap()).unwrap();
    }
    w.finish().unwrap();
    let back = SafetensorsSource::open_dir(dir.path()).unwrap();
    assert!(back.warnings().is_empty());
    for m in src.tensors() {
        assert_eq!(back.bytes(&m.name).unwrap(), src.bytes(&m.name).unwrap());
    }
    let index = std::fs::read_to_string(dir.path().join(INDEX_FILE)).unwrap();
    assert!(index.contains("\"total_size\": ") && index.ends_with("}\n"));
}

#[test]
fn unfinished_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.safetensors");
    let metas = vec![TensorMeta::new("a", DType::F32, vec![4])];
    let mut w = SafetensorsWriter::create(&out, metas, &BTreeMap::new()).unwrap();
    w.write("a", &[0; 8]).unwrap();
    assert!(w.write("b", &[0; 4]).is_err());
    assert!(w.commit().is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn legal_edge_cases_round_trip() {
    // S18: an empty tensor and a scalar.
    let h = r#"{"e":{"dtype":"F32","shape":[0,4096],"data_offsets":[0,0]},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}"#;
    let src = open_bytes(&raw(h, &1.5f32.to_le_bytes())).unwrap();
    assert_eq!(src.bytes("s").unwrap().as_ref(), 1.5f32.to_le_bytes());
    assert!(src.bytes("e").unwrap().is_empty());
}

#[test]
fn attacks_are_rejected_with_typed_errors() {
    let ok = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "S1 header longer than file",
            {
                let mut b = 1000u64.to_le_bytes().to_vec();
                b.extend_from_slice(&[b' '; 64]);
                b
            },
            "Truncated",
        ),
        (
            "S2 header over cap",
            (1u64 << 63).to_le_bytes().to_vec(),
            "TooLarge",
        ),
        ("S3 tiny file", vec![1, 2, 3], "Truncated"),
        ("S4 not JSON", raw("[1,2]   ", &[]), "Malformed"),
        (
            "S5 duplicate",
            raw(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}"#,
                &[0; 8],
            ),
            "Duplicate",
        ),
        (
            "S6 overlap",
            raw(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            "Layout",
        ),
        (
            "S7 hole",
            raw(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &[0; 8],
            ),
            "Layout",
        ),
        ("S8 trailing", raw(ok, &[0; 12]), "TrailingBytes"),
        ("S9 truncated", raw(ok, &[0; 6]), "Truncated"),
        (
            "S10 reversed",
            raw(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
                &[0; 8],
            ),
            "Layout",
        ),
        (
            "S11 overflow",
            raw(
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}"#,
                &[],
            ),
            "Size",
        ),
        (
            "S12 size mismatch",
            raw(
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "Layout",
        ),
        (
            "S13 sub-byte",
            raw(
                r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
                &[0; 2],
            ),
            "Size",
        ),
        (
            "S14 unknown dtype",
            raw(
                r#"{"a":{"dtype":"object","shape":[1],"data_offsets":[0,1]}}"#,
                &[0],
            ),
            "UnsupportedDType",
        ),
        (
            "S15 nested metadata",
            raw(r#"{"__metadata__":{"a":{"b":1}}}"#, &[]),
            "Malformed",
        ),
    ];
    for (what, bytes, kind) in cases {
        let got = kind_of(&bytes);
        assert!(got.starts_with(kind), "{what}: expected {kind}, got {got}");
    }
}

#[test]
fn error_names_file_and_tensor() {
    let e = open_bytes(&raw(
        r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ))
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("x.safetensors") && msg.contains("`w`"),
        "{msg}"
    );
}

#[test]
fn index_attacks_are_rejected() {
    let src = fixtures().join("llama_sharded");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join(INDEX_FILE)).unwrap()).unwrap();
    let first = index["weight_map"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    for (what, target) in [
        ("I1 traversal", "../x.safetensors"),
        ("I1 absolute", "/etc/passwd"),
        ("I3 missing", "absent.safetensors"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
        let mut bad = index.clone();
        bad["weight_map"][&first] = serde_json::Value::String(target.into());
        std::fs::write(dir.path().join(INDEX_FILE), bad.to_string()).unwrap();
        let err = SafetensorsSource::open_dir(dir.path()).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::PathEscape(_) | ErrorKind::Index(_) | ErrorKind::Io(_)
            ),
            "{what}: {err}"
        );
    }
}
