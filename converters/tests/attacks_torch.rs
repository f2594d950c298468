//! Every PyTorch/zip attack file of RELIABILITY.md (P1-P13, Z1-Z8), made by
//! `xtask/scripts/gen_attack_files.py`, is refused with its typed error, quickly, without a
//! panic; `ok_minimal.bin`, built by the same code without the attack, is read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wharf_converters::{AnySource, Error, ErrorKind};
use wharf_core::TensorSource;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/attacks/torch")
}

/// Opens `path` and reads every tensor, as a conversion would.
fn read_all(path: &Path) -> Result<usize, Error> {
    let src = AnySource::open(path)?;
    for m in src.tensors() {
        src.bytes(&m.name).map_err(wharf_converters::from_core)?;
    }
    Ok(src.tensors().len())
}

/// The error each class must produce.
fn expected(name: &str) -> fn(&ErrorKind) -> bool {
    let prefix = |p: &str| name.starts_with(p);
    match () {
        _ if prefix("P6_key_traversal") || prefix("Z1_") => {
            |k| matches!(k, ErrorKind::PathEscape(_))
        }
        _ if prefix("P6_pid") || prefix("Z2_") => |k| matches!(k, ErrorKind::Unsafe { .. }),
        _ if ["P1_", "P2_", "P3_", "P4_", "P5_"]
            .iter()
            .any(|p| prefix(p)) =>
        {
            |k| matches!(k, ErrorKind::Unsafe { .. })
        }
        _ if prefix("P7_") => |k| matches!(k, ErrorKind::Layout(_)),
        _ if prefix("P9_binunicode") || prefix("P9_frame") || prefix("P11_missing") => {
            |k| matches!(k, ErrorKind::Truncated { .. })
        }
        _ if prefix("P10_") => |k| matches!(k, ErrorKind::TooLarge { .. }),
        _ if prefix("P11_bytes_after") => |k| matches!(k, ErrorKind::TrailingBytes { .. }),
        _ if prefix("P12_") || prefix("P13_") => |k| matches!(k, ErrorKind::UnknownFormat(_)),
        _ if prefix("Z3_") => |k| matches!(k, ErrorKind::Duplicate { .. }),
        _ if prefix("Z8_encrypted") => {
            |k| matches!(k, ErrorKind::Unsafe { .. } | ErrorKind::Malformed { .. })
        }
        _ => |k| matches!(k, ErrorKind::Malformed { .. }),
    }
}

#[test]
fn every_attack_file_is_refused_with_its_typed_error() {
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut classes = std::collections::BTreeSet::new();
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        if name.starts_with("ok_") {
            continue;
        }
        classes.insert(name.split('_').next().unwrap().to_owned());
        let t = Instant::now();
        let r = std::panic::catch_unwind(|| read_all(path));
        let took = t.elapsed();
        let r = r.unwrap_or_else(|_| panic!("{name}: panicked"));
        let e = r.err().unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(
            expected(name)(e.kind()),
            "{name}: wrong error: {e} ({:?})",
            e.kind()
        );
        assert!(took < Duration::from_secs(2), "{name}: took {took:?}");
    }
    let want: Vec<String> = (1..=13)
        .map(|i| format!("P{i}"))
        .chain((1..=8).map(|i| format!("Z{i}")))
        .collect();
    for c in want {
        assert!(classes.contains(&c), "no attack file for {c}");
    }
}

#[test]
fn the_unattacked_control_file_reads() {
    assert_eq!(read_all(&dir().join("ok_minimal.bin")).unwrap(), 1);
}

#[test]
fn refusals_name_the_global_and_the_byte_offset() {
    let e = read_all(&dir().join("P4_stack_global_memo.bin")).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("os.system") && e.offset().is_some(), "{msg}");
    let e = read_all(&dir().join("P1_builtins_eval.bin")).unwrap_err();
    assert!(e.to_string().contains("builtins.eval"), "{e}");
}
