//! One committed file per RELIABILITY.md class for safetensors (S1–S19), sharded indexes
//! (I1–I5) and GGUF (G1–G17), written by `xtask/scripts/gen_attack_formats.py`.
//! Every attack is refused with a typed error naming the file, in bounded time; the `_ok_`
//! files are legal edge cases that must be accepted. Semantic GGUF metadata (G16) is refused
//! where it is consumed (`cli/tests/attacks.rs`); non-finite weights (S17) are refused when
//! quantized (`cli/tests/cli.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wharf_converters::AnySource;

fn attacks(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/attacks")
        .join(kind);
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn class(p: &Path) -> String {
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    name.split('_').next().unwrap().to_owned()
}

fn check(kind: &str, classes: std::ops::RangeInclusive<u32>, letter: char) {
    let files = attacks(kind);
    for n in classes {
        let c = format!("{letter}{n}");
        assert!(
            files.iter().any(|f| class(f) == c),
            "no attack file for {c}"
        );
    }
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let t = Instant::now();
        let r = AnySource::open(&f);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{name}: took {:?}",
            t.elapsed()
        );
        let accepted = name.contains("_ok_") || name.starts_with("G16") || name.starts_with("I5");
        match r {
            Ok(_) => assert!(accepted, "{name} was accepted"),
            Err(e) => {
                assert!(!accepted, "{name} was refused: {e}");
                assert!(
                    e.to_string().contains(&name),
                    "{name}: message does not name it: {e}"
                );
            }
        }
    }
}

#[test]
fn safetensors_attacks_are_refused() {
    check("safetensors", 1..=19, 'S');
}

#[test]
fn gguf_attacks_are_refused() {
    check("gguf", 1..=17, 'G');
}

#[test]
fn index_attacks_are_refused() {
    check("index", 1..=5, 'I');
}

#[test]
fn a_lying_total_size_is_reported() {
    let dir = attacks("index")
        .into_iter()
        .find(|p| class(p) == "I5")
        .unwrap();
    let src = AnySource::open(&dir).unwrap();
    assert!(
        src.warnings().iter().any(|w| w.contains("total_size")),
        "{:?}",
        src.warnings()
    );
}
