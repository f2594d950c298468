//! GGUF reader/writer tests: llama.cpp's own files, byte-exact rewrite, and G1-G15 attacks.

use std::path::{Path, PathBuf};

use wharf_core::{DType, TensorMeta, TensorSink, TensorSource};

use super::*;

fn reference(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures/reference/gguf")
        .join(name)
}

fn open_bytes(bytes: &[u8]) -> crate::Result<GgufFile> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.gguf");
    std::fs::write(&p, bytes).unwrap();
    GgufFile::open(&p)
}

/// A small valid file: one KV and two F32 tensors.
fn sample() -> (Vec<(String, Value)>, Vec<TensorMeta>) {
    let kvs = vec![(
        "general.architecture".to_owned(),
        Value::String("llama".into()),
    )];
    let t = vec![
        TensorMeta::new("a", DType::F32, vec![3]),
        TensorMeta::new("b", DType::F32, vec![2, 2]),
    ];
    (kvs, t)
}

fn sample_bytes() -> Vec<u8> {
    let (kvs, t) = sample();
    let (mut out, _) = header_bytes(&kvs, &t).unwrap();
    out.extend_from_slice(&[0u8; 32]); // a: 12 bytes padded to 32
    out.extend_from_slice(&[0u8; 32]); // b: 16 bytes padded to 32
    out
}

#[test]
fn llama_cpp_files_parse_and_rewrite_byte_identically() {
    for name in [
        "llama-llamacpp-Q4_0.gguf",
        "llama-llamacpp-Q4_K_M.gguf",
        "llama_tied-llamacpp-Q4_K_M.gguf",
    ] {
        let path = reference(name);
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(f.version(), 3);
        assert_eq!(
            f.get("general.architecture").and_then(Value::as_str),
            Some("llama")
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("copy.gguf");
        let mut w = GgufWriter::create(&out, f.kvs(), f.tensors(), None).unwrap();
        for m in f.tensors() {
            w.write(&m.name, &f.bytes(&m.name).unwrap()).unwrap();
        }
        w.commit().unwrap();
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(&path).unwrap(),
            "{name} differs"
        );
    }
}

#[test]
fn shapes_are_outer_first() {
    let f = GgufFile::open(reference("llama-llamacpp-Q8_0.gguf")).unwrap();
    let q = f.meta("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.shape.dims(), &[256, 256]);
    let k = f.meta("blk.0.attn_k.weight").unwrap();
    assert_eq!(k.shape.dims(), &[128, 256]);
    assert_eq!(k.dtype, DType::Q8_0);
}

#[test]
fn sample_parses_and_missing_last_padding_is_accepted() {
    let b = sample_bytes();
    assert_eq!(open_bytes(&b).unwrap().tensors().len(), 2);
    assert!(open_bytes(&b[..b.len() - 16]).is_ok());
    let e = open_bytes(&b[..b.len() - 17]).unwrap_err();
    assert!(
        matches!(e.kind(), crate::ErrorKind::Truncated { .. }),
        "{e}"
    );
}

fn patched(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut b = sample_bytes();
    f(&mut b);
    match open_bytes(&b) {
        Ok(_) => "accepted".into(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn attacks_are_rejected() {
    // Layout of sample(): magic 0, version 4, n_tensors 8, n_kv 16, key len 24, key 32..52,
    // type 52, value len 56, "llama" 64..69, then tensor "a": name len 69.
    let key_end = 24 + 8 + "general.architecture".len();
    let info_a = key_end + 4 + 8 + 5;
    type Patch = Box<dyn FnOnce(&mut Vec<u8>)>;
    let cases: Vec<(&str, Patch, &str)> = vec![
        (
            "G1 magic",
            Box::new(|b| b[0..4].copy_from_slice(b"FUGG")),
            "Malformed",
        ),
        ("G1 version 1", Box::new(|b| b[4] = 1), "Version"),
        (
            "G1 byte-swapped",
            Box::new(|b| b[4..8].copy_from_slice(&3u32.to_be_bytes())),
            "Malformed",
        ),
        (
            "G2 n_kv huge",
            Box::new(|b| set_u64(b, 16, 0x0555_5555_5555_555a)),
            "TooLarge",
        ),
        (
            "G2 n_tensors max",
            Box::new(|b| set_u64(b, 8, u64::MAX)),
            "TooLarge",
        ),
        (
            "G3 string len",
            Box::new(|b| set_u64(b, 24, u64::MAX)),
            "TooLarge",
        ),
        (
            "G3 string past end",
            Box::new(move |b| set_u64(b, key_end + 4, 1 << 20)),
            "Truncated",
        ),
        (
            "G5 value type 13",
            Box::new(move |b| b[key_end] = 13),
            "Metadata",
        ),
        ("G6 empty key", Box::new(|b| set_u64(b, 24, 0)), "Malformed"),
        (
            "G8 n_dims 5",
            Box::new(move |b| b[info_a + 9] = 5),
            "Malformed",
        ),
        (
            "G9 negative dim",
            Box::new(move |b| set_u64(b, info_a + 13, u64::MAX)),
            "Layout",
        ),
        (
            "G11 type 40",
            Box::new(move |b| b[info_a + 21] = 40),
            "UnsupportedDType",
        ),
        (
            "G11 removed 31",
            Box::new(move |b| b[info_a + 21] = 31),
            "UnsupportedDType",
        ),
        (
            "G11 partial block",
            Box::new(move |b| b[info_a + 21] = 8),
            "Size",
        ),
        (
            "G12 misaligned offset",
            Box::new(move |b| b[info_a + 25] = 4),
            "Layout",
        ),
        (
            "G13 trailing",
            Box::new(|b| b.extend_from_slice(&[0; 64])),
            "TrailingBytes",
        ),
        (
            "G13 truncated",
            Box::new(|b| b.truncate(b.len() - 40)),
            "Truncated",
        ),
        (
            "G15 duplicate name",
            Box::new(move |b| {
                let i = b
                    .windows(9)
                    .rposition(|w| w == [1, 0, 0, 0, 0, 0, 0, 0, b'b'])
                    .unwrap();
                b[i + 8] = b'a';
            }),
            "Duplicate",
        ),
    ];
    for (what, f, kind) in cases {
        let got = patched(f);
        assert!(got.starts_with(kind), "{what}: expected {kind}, got {got}");
    }
}

#[test]
fn writer_refuses_bad_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let long = TensorMeta::new("x".repeat(64), DType::F32, vec![1]);
    assert!(GgufWriter::create(dir.path().join("a.gguf"), &[], &[long], None).is_err());
    let partial = TensorMeta::new("q", DType::Q4_0, vec![2, 31]);
    assert!(GgufWriter::create(dir.path().join("b.gguf"), &[], &[partial], None).is_err());
    let kvs = vec![(ALIGNMENT_KEY.to_owned(), Value::U32(13))];
    assert!(GgufWriter::create(dir.path().join("c.gguf"), &kvs, &[], None).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn every_value_type_round_trips() {
    let kvs: Vec<(String, Value)> = [
        Value::U8(1),
        Value::I8(-2),
        Value::U16(3),
        Value::I16(-4),
        Value::U32(5),
        Value::I32(-6),
        Value::F32(0.5),
        Value::Bool(true),
        Value::String("é".into()),
        Value::U64(1 << 40),
        Value::I64(-7),
        Value::F64(0.25),
        Value::strings(["a", "b"]),
        Value::Array(ValueType::I32, vec![Value::I32(1), Value::I32(-1)]),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, v)| (format!("k.{i}"), v))
    .collect();
    let (b, _) = header_bytes(&kvs, &[]).unwrap();
    let f = open_bytes(&b).unwrap();
    assert_eq!(f.kvs(), kvs.as_slice());
}

#[test]
fn bool_must_be_zero_or_one_and_arrays_do_not_nest() {
    let kvs = vec![("k".to_owned(), Value::Bool(true))];
    let (mut b, _) = header_bytes(&kvs, &[]).unwrap();
    let at = b.len() - 1;
    b.truncate(at + 1);
    let at = b.iter().rposition(|&x| x == 1).unwrap();
    b[at] = 2;
    assert!(open_bytes(&b).is_err());
    let nested = vec![("k".to_owned(), Value::Array(ValueType::Array, vec![]))];
    let (b, _) = header_bytes(&nested, &[]).unwrap();
    assert!(matches!(
        open_bytes(&b).unwrap_err().kind(),
        crate::ErrorKind::Metadata { .. }
    ));
}
