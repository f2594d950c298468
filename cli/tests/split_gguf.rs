//! Split GGUF (llama.cpp's `NAME-0000i-of-0000N.gguf` sets): `quantize`, `convert` and `export`
//! write them; every reader opens a set by its first file and gets the unsplit file's tensors;
//! a set that is not whole, or a shard that is not the first, is refused by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wharf_converters::gguf::{GgufFile, Value};
use wharf_core::TensorSource;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures/models")
        .join(p)
}

fn wharf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = wharf(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every tensor's bytes, by name.
fn tensors(g: &GgufFile) -> Vec<(String, Vec<u8>)> {
    g.tensors()
        .iter()
        .map(|m| (m.name.clone(), g.bytes(&m.name).unwrap().into_owned()))
        .collect()
}

fn split_kvs(g: &GgufFile) -> (u64, u64, u64) {
    let get = |k: &str| g.get(k).and_then(Value::as_u64).unwrap();
    (
        get("split.no"),
        get("split.count"),
        get("split.tensors.count"),
    )
}

#[test]
fn a_quantized_split_set_holds_the_unsplit_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("deepseek_v3");
    let whole = dir.path().join("whole.gguf");
    let out = dir.path().join("ds.gguf");
    ok(&[
        "quantize",
        s(&src),
        "-o",
        s(&whole),
        "--scheme",
        "gguf:Q4_K_M",
    ]);
    let said = ok(&[
        "quantize",
        s(&src),
        "-o",
        s(&out),
        "--scheme",
        "gguf:Q4_K_M",
        "--split-max-tensors",
        "40",
    ]);
    let whole = GgufFile::open(&whole).unwrap();
    let n = whole.tensors().len().div_ceil(40);
    assert!(n >= 2 && said.contains(&format!("{n} files")), "{said}");
    assert!(!out.exists(), "no unsplit file is written");
    let first = dir.path().join(format!("ds-00001-of-{n:05}.gguf"));
    let set = GgufFile::open(&first).unwrap();
    assert_eq!(set.files().len(), n);
    assert_eq!(tensors(&set), tensors(&whole));
    // The first shard has the whole file's metadata, then the split keys gguf-split leaves.
    let keys: Vec<&str> = set.kvs().iter().map(|(k, _)| k.as_str()).collect();
    let plain: Vec<&str> = whole.kvs().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys[..plain.len()], plain[..]);
    assert_eq!(
        keys[plain.len()..],
        ["split.no", "split.tensors.count", "split.count"]
    );
    for (i, f) in set.files().iter().enumerate() {
        let shard = GgufFile::open_one(f).unwrap();
        assert_eq!(
            split_kvs(&shard),
            (i as u64, n as u64, whole.tensors().len() as u64)
        );
        assert!(shard.tensors().len() <= 40);
        if i > 0 {
            assert_eq!(
                shard.kvs().len(),
                3,
                "only the split keys after the first shard"
            );
        }
    }
}

#[test]
fn every_reader_takes_a_split_set_by_its_first_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("llama");
    let out = dir.path().join("l.gguf");
    ok(&[
        "convert",
        s(&src),
        "-o",
        s(&out),
        "--dtype",
        "f32",
        "--split-max-size",
        "2M",
    ]);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let n = names.len();
    assert!(n >= 3, "{names:?}");
    assert_eq!(names[0], format!("l-00001-of-{n:05}.gguf"));
    let files: Vec<PathBuf> = GgufFile::open(dir.path().join(&names[0]))
        .unwrap()
        .files()
        .iter()
        .map(|p| p.to_path_buf())
        .collect();
    assert_eq!(files.len(), n);
    let first = s(&files[0]).to_owned();
    let whole = dir.path().join("whole.gguf");
    ok(&["convert", s(&src), "-o", s(&whole), "--dtype", "f32"]);
    // inspect, infer, requantize and convert back to HF read the set as the unsplit file.
    assert!(ok(&["inspect", &first]).contains("split.count"));
    let logits = |m: &str, npy: &str| {
        let npy = dir.path().join(npy);
        ok(&[
            "infer",
            m,
            "--ids",
            "1,2,3,4,5",
            "--max-new",
            "3",
            "--logits-out",
            s(&npy),
        ]);
        std::fs::read(npy).unwrap()
    };
    assert_eq!(logits(&first, "a.npy"), logits(s(&whole), "b.npy"));
    let (q1, q2) = (dir.path().join("q1.gguf"), dir.path().join("q2.gguf"));
    ok(&["quantize", &first, "-o", s(&q1), "--scheme", "gguf:Q8_0"]);
    ok(&["quantize", s(&whole), "-o", s(&q2), "--scheme", "gguf:Q8_0"]);
    assert_eq!(std::fs::read(&q1).unwrap(), std::fs::read(&q2).unwrap());
    let (h1, h2) = (dir.path().join("hf1"), dir.path().join("hf2"));
    ok(&["convert", &first, "-o", s(&h1)]);
    ok(&["convert", s(&whole), "-o", s(&h2)]);
    let st = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(st(&h1), st(&h2));
    // A shard that is not the first, or a set with a shard missing, is refused by name.
    let o = wharf(&["inspect", s(&files[1])]);
    let err = String::from_utf8_lossy(&o.stderr);
    let second = format!("shard 2 of {n}");
    assert!(
        !o.status.success() && err.contains(&second) && err.contains(&first),
        "{err}"
    );
    std::fs::remove_file(&files[n - 1]).unwrap();
    let o = wharf(&["inspect", &first]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(&format!("l-{n:05}-of-{n:05}.gguf")),
        "{err}"
    );
}

#[test]
fn a_pi5_bundle_lists_and_verifies_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    ok(&[
        "export",
        s(&fixture("qwen2")),
        "--target",
        "pi5",
        "-o",
        s(&out),
        "--split-max-tensors",
        "20",
    ]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let names: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .filter(|p| p.ends_with(".gguf"))
        .collect();
    assert!(
        names.len() >= 2 && names.iter().all(|n| n.contains("-of-")),
        "{names:?}"
    );
    ok(&["verify", s(&out)]);
    let o = wharf(&[
        "export",
        s(&fixture("qwen2")),
        "--target",
        "h800",
        "-o",
        s(&dir.path().join("h")),
        "--split-max-size",
        "1G",
    ]);
    assert!(!o.status.success());
}

/// A shard of another set put in place of one of this set's is refused, naming it.
#[test]
fn a_shard_of_another_set_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("deepseek_v3");
    for (name, n) in [("a", "40"), ("b", "20")] {
        let out = dir.path().join(format!("{name}.gguf"));
        ok(&[
            "quantize",
            s(&src),
            "-o",
            s(&out),
            "--scheme",
            "gguf:Q8_0",
            "--split-max-tensors",
            n,
        ]);
    }
    let shards = |p: &str| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with(p))
            .collect();
        v.sort();
        v
    };
    let (a, b) = (shards("a-"), shards("b-"));
    assert!(a.len() == 2 && b.len() > 2, "{a:?} {b:?}");
    std::fs::copy(&b[1], &a[1]).unwrap();
    let o = wharf(&["inspect", s(&a[0])]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("split.count") && err.contains(s(&a[1])),
        "{err}"
    );
}
