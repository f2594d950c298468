//! `wharf quantize --imatrix` and `--allow-requantize`: the importance matrix reaches the codecs
//! (per expert slice for stacked experts) and is recorded in the metadata where llama-quantize
//! records it; a quantized GGUF is refused unless requantizing is allowed, and then equals
//! quantizing its dequantized values.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wharf_converters::gguf::{GgufFile, GgufWriter, Value};
use wharf_converters::imatrix::{RawEntry, write_gguf};
use wharf_core::{DType, TensorMeta, TensorSink, TensorSource};
use wharf_quantizers::ggml;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures")
        .join(p)
}

fn wharf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) {
    let o = wharf(args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Deterministic importances for every 2-D/3-D weight of `gguf`.
fn imatrix_for(gguf: &Path, out: &Path) {
    let g = GgufFile::open(gguf).unwrap();
    let entries: Vec<RawEntry> = g
        .tensors()
        .iter()
        .filter(|m| m.shape.dims().len() >= 2)
        .map(|m| {
            let dims = m.shape.dims();
            let experts = if dims.len() == 3 { dims[0] } else { 1 } as usize;
            let n = dims[dims.len() - 1] as usize * experts;
            RawEntry {
                name: m.name.clone(),
                sums: (0..n)
                    .map(|i| ((i * 37) % 101) as f32 * 0.25 + 0.01)
                    .collect(),
                counts: (0..experts).map(|e| (e % 3 + 2) as f32).collect(),
            }
        })
        .collect();
    write_gguf(out, &entries, &["fixture.txt"], 3, 512).unwrap();
}

fn get<'a>(kvs: &'a [(String, Value)], key: &str) -> Option<(usize, &'a Value)> {
    kvs.iter()
        .position(|(k, _)| k == key)
        .map(|i| (i, &kvs[i].1))
}

#[test]
fn imatrix_changes_the_bytes_and_is_recorded_after_the_file_type() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let src = fixture("models/llama");
    let src = src.to_str().unwrap();
    ok(&[
        "quantize",
        src,
        "-o",
        &d("plain.gguf"),
        "--scheme",
        "gguf:Q4_K_M",
    ]);
    imatrix_for(Path::new(&d("plain.gguf")), Path::new(&d("im.gguf")));
    let with = d("with.gguf");
    ok(&[
        "quantize",
        src,
        "-o",
        &with,
        "--scheme",
        "gguf:Q4_K_M",
        "--imatrix",
        &d("im.gguf"),
    ]);
    let (plain, with) = (
        GgufFile::open(d("plain.gguf")).unwrap(),
        GgufFile::open(&with).unwrap(),
    );
    let changed = plain
        .tensors()
        .iter()
        .filter(|m| {
            m.dtype.is_ggml_block() && plain.bytes(&m.name).unwrap() != with.bytes(&m.name).unwrap()
        })
        .count();
    assert!(changed > 0, "the importance matrix changed no tensor");
    let kvs = with.kvs();
    let (ft, _) = get(kvs, "general.file_type").unwrap();
    assert_eq!(
        get(kvs, "quantize.imatrix.file"),
        Some((ft + 1, &Value::String(d("im.gguf"))))
    );
    let dataset = Value::String("fixture.txt".into());
    assert_eq!(
        get(kvs, "quantize.imatrix.dataset"),
        Some((ft + 2, &dataset))
    );
    let entries = plain
        .tensors()
        .iter()
        .filter(|m| m.shape.dims().len() >= 2)
        .count() as u32;
    assert_eq!(
        get(kvs, "quantize.imatrix.entries_count"),
        Some((ft + 3, &Value::U32(entries)))
    );
    assert_eq!(
        get(kvs, "quantize.imatrix.chunks_count"),
        Some((ft + 4, &Value::U32(3)))
    );
    assert_eq!(kvs.len(), ft + 5);
}

#[test]
fn stacked_experts_use_their_own_slice_of_the_imatrix() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let src = fixture("models/deepseek_v3");
    ok(&[
        "convert",
        src.to_str().unwrap(),
        "-o",
        &d("f32.gguf"),
        "--dtype",
        "f32",
    ]);
    imatrix_for(Path::new(&d("f32.gguf")), Path::new(&d("im.gguf")));
    let out = d("q.gguf");
    ok(&[
        "quantize",
        &d("f32.gguf"),
        "-o",
        &out,
        "--scheme",
        "gguf:Q4_0",
        "--imatrix",
        &d("im.gguf"),
    ]);
    let (f32s, q) = (
        GgufFile::open(d("f32.gguf")).unwrap(),
        GgufFile::open(&out).unwrap(),
    );
    let im = wharf_converters::imatrix::Imatrix::load(d("im.gguf")).unwrap();
    let m = q
        .tensors()
        .iter()
        .find(|m| m.name.contains("_exps") && m.dtype.is_ggml_block())
        .unwrap();
    let dims = m.shape.dims();
    let (experts, n_per_row) = (dims[0] as usize, dims[2] as usize);
    let values: Vec<f32> = f32s
        .bytes(&m.name)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let mut want = vec![0u8; m.nbytes().unwrap() as usize];
    let per = want.len() / experts;
    for (e, y) in want.chunks_mut(per).enumerate() {
        let x = &values[e * values.len() / experts..(e + 1) * values.len() / experts];
        let w = &im.entries[&m.name][e * n_per_row..(e + 1) * n_per_row];
        ggml::quantize(m.dtype, x, n_per_row, Some(w), y).unwrap();
    }
    assert!(q.bytes(&m.name).unwrap() == want, "{}", m.name);
}

#[test]
fn an_imatrix_entry_of_the_wrong_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let bad = RawEntry {
        name: "blk.0.attn_q.weight".into(),
        sums: vec![1.0; 3],
        counts: vec![1.0],
    };
    write_gguf(Path::new(&d("im.gguf")), &[bad], &[], 1, 1).unwrap();
    let src = fixture("models/llama");
    let o = wharf(&[
        "quantize",
        src.to_str().unwrap(),
        "-o",
        &d("q.gguf"),
        "--scheme",
        "gguf:Q4_0",
        "--imatrix",
        &d("im.gguf"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("imatrix size 3") && err.contains("blk.0.attn_q.weight"),
        "{err}"
    );
    assert!(!Path::new(&d("q.gguf")).exists());
}

#[test]
fn a_quantized_source_needs_allow_requantize_and_then_equals_its_dequantized_f32() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let q8 = fixture("reference/gguf/llama-llamacpp-Q8_0.gguf");
    let q8 = q8.to_str().unwrap();
    let o = wharf(&["quantize", q8, "-o", &d("a.gguf"), "--scheme", "gguf:Q4_0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("requantizing from type Q8_0 is disabled")
            && err.contains("--allow-requantize"),
        "{err}"
    );
    assert!(!Path::new(&d("a.gguf")).exists());

    // The same file with every tensor dequantized to F32.
    let g = GgufFile::open(q8).unwrap();
    let metas: Vec<TensorMeta> = g
        .tensors()
        .iter()
        .map(|m| TensorMeta::new(m.name.clone(), DType::F32, m.shape.clone()))
        .collect();
    let mut w = GgufWriter::create(d("f32.gguf"), g.kvs(), &metas, None).unwrap();
    for m in g.tensors() {
        let mut v = vec![0f32; m.numel().unwrap() as usize];
        ggml::dequantize(m.dtype, &g.bytes(&m.name).unwrap(), &mut v).unwrap();
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.write(&m.name, &bytes).unwrap();
    }
    w.commit().unwrap();

    ok(&[
        "quantize",
        q8,
        "-o",
        &d("a.gguf"),
        "--scheme",
        "gguf:Q4_0",
        "--allow-requantize",
    ]);
    ok(&[
        "quantize",
        &d("f32.gguf"),
        "-o",
        &d("b.gguf"),
        "--scheme",
        "gguf:Q4_0",
    ]);
    let (a, b) = (
        GgufFile::open(d("a.gguf")).unwrap(),
        GgufFile::open(d("b.gguf")).unwrap(),
    );
    assert!(a.tensors().iter().any(|m| m.dtype == DType::Q4_0));
    assert_eq!(a.tensors(), b.tensors());
    for m in a.tensors() {
        assert!(
            a.bytes(&m.name).unwrap() == b.bytes(&m.name).unwrap(),
            "{}",
            m.name
        );
    }
    assert_eq!(a.kvs(), b.kvs());
}

#[test]
fn requantizing_to_the_same_type_copies_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.gguf");
    let q8 = fixture("reference/gguf/llama-llamacpp-Q8_0.gguf");
    // Every tensor is already what the Q8_0 mix chooses, so nothing needs requantizing.
    ok(&[
        "quantize",
        q8.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--scheme",
        "gguf:Q8_0",
    ]);
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&q8).unwrap());
}
