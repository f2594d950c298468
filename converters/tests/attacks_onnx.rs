//! Every ONNX attack file of RELIABILITY.md (O1-O6), made by
//! `xtask/scripts/gen_attack_files.py`, is refused with its typed error, quickly, without a
//! panic; the `ok_*` controls built by the same code are read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wharf_converters::{AnySource, Error, ErrorKind};
use wharf_core::TensorSource;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/attacks/onnx")
}

fn read_all(path: &Path) -> Result<usize, Error> {
    let src = AnySource::open(path)?;
    for m in src.tensors() {
        src.bytes(&m.name).map_err(wharf_converters::from_core)?;
    }
    Ok(src.tensors().len())
}

fn expected(name: &str) -> fn(&ErrorKind) -> bool {
    let p = |x: &str| name.starts_with(x);
    match () {
        _ if p("O1_") => |k| matches!(k, ErrorKind::PathEscape(_)),
        _ if p("O2_") || p("O5_length") => |k| matches!(k, ErrorKind::Truncated { .. }),
        _ if p("O3_") => |k| matches!(k, ErrorKind::Layout(_)),
        _ if p("O4_negative") => |k| matches!(k, ErrorKind::Malformed { .. }),
        _ if p("O4_dims") => |k| matches!(k, ErrorKind::Size(_)),
        _ if p("O5_deep") => |k| matches!(k, ErrorKind::Empty),
        _ if p("O6_") => |k| matches!(k, ErrorKind::Unsafe { .. }),
        _ => |_| false,
    }
}

#[test]
fn every_onnx_attack_file_is_refused_with_its_typed_error() {
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
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
        let r = std::panic::catch_unwind(|| read_all(path))
            .unwrap_or_else(|_| panic!("{name}: panicked"));
        let e = r.err().unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(
            expected(name)(e.kind()),
            "{name}: wrong error: {e} ({:?})",
            e.kind()
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{name}: slow");
    }
    assert_eq!(classes.len(), 6, "{classes:?}");
}

#[test]
fn the_controls_read() {
    assert_eq!(read_all(&dir().join("ok_inline.onnx")).unwrap(), 1);
    assert_eq!(read_all(&dir().join("ok_external.onnx")).unwrap(), 1);
}

/// O1: a hard link to a file elsewhere looks like a plain file inside the folder.
#[cfg(unix)]
#[test]
fn a_hard_linked_external_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside.data");
    std::fs::copy(dir().join("ok_external.onnx.data"), &outside).unwrap();
    let model_dir = tmp.path().join("model");
    std::fs::create_dir(&model_dir).unwrap();
    std::fs::copy(dir().join("ok_external.onnx"), model_dir.join("m.onnx")).unwrap();
    std::fs::hard_link(&outside, model_dir.join("ok_external.onnx.data")).unwrap();
    let e = read_all(&model_dir.join("m.onnx")).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::PathEscape(_)), "{e}");
}
