//! Replays every fuzz corpus file and every committed attack file through the fuzz targets'
//! properties on stable Rust, so a regression a fuzzer once found fails CI.

use std::path::{Path, PathBuf};

use wharf_converters::roundtrip::{self, Outcome};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

type Check = fn(&[u8]) -> Result<Outcome, roundtrip::Violation>;

const CHECKS: [(&str, Check); 6] = [
    ("safetensors_header", roundtrip::safetensors),
    ("gguf", roundtrip::gguf),
    ("shard_index", roundtrip::shard_index),
    ("torch_zip", roundtrip::torch),
    ("pickle", roundtrip::pickle),
    ("onnx", roundtrip::onnx),
];

#[test]
fn corpus_and_attack_files_never_break_a_property() {
    let mut files = Vec::new();
    files_under(&root().join("fuzz/corpus"), &mut files);
    files_under(&root().join("fuzz/artifacts"), &mut files);
    files_under(&root().join("tests/data/attacks"), &mut files);
    assert!(files.len() >= 8, "corpus missing: {files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for (name, check) in CHECKS {
            if let Err(v) = check(&bytes) {
                panic!("{name} on {}: {v:?}", f.display());
            }
        }
    }
}

#[test]
fn each_seed_is_accepted_by_its_own_target() {
    for (name, check) in CHECKS {
        let mut files = Vec::new();
        files_under(&root().join("fuzz/corpus").join(name), &mut files);
        assert!(!files.is_empty(), "{name}: no seeds");
        let accepted = files
            .iter()
            .filter(|f| check(&std::fs::read(f).unwrap()) == Ok(Outcome::Accepted))
            .count();
        assert!(accepted > 0, "{name}: no seed is accepted");
    }
}

#[test]
fn llama_cpp_files_round_trip() {
    let mut files = Vec::new();
    files_under(
        &root().join("tests/data/fixtures/reference/gguf"),
        &mut files,
    );
    let ggufs: Vec<_> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "gguf"))
        .collect();
    assert!(!ggufs.is_empty());
    for f in ggufs {
        assert_eq!(
            roundtrip::gguf(&std::fs::read(f).unwrap()),
            Ok(Outcome::Accepted),
            "{}",
            f.display()
        );
    }
}
