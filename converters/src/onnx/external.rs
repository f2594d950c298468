//! ONNX external data (onnx `onnx/external_data_helper.py` semantics, checked strictly):
//! `location` is a relative path inside the model's folder, reached without `..`, links or
//! hard links, and `offset + length` lies inside that file (RELIABILITY.md O1, O2).

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::mmap::Mapped;

fn escape(location: &str) -> Error {
    Error::new(ErrorKind::PathEscape(location.to_owned()))
}

/// Resolves `location` inside `dir` and maps it.
pub fn open(dir: &Path, location: &str) -> Result<Mapped> {
    let rel = Path::new(location);
    let plain = !location.is_empty()
        && !location.contains(['\\', '\0', ':'])
        && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(escape(location));
    }
    let path = dir.join(rel);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::from(e).in_file(&path))?;
    if meta.file_type().is_symlink() || !meta.is_file() || hard_linked(&meta) {
        return Err(escape(location));
    }
    // A folder on the way could itself be a link: the canonical path must stay inside.
    let canon_dir = dir
        .canonicalize()
        .map_err(|e| Error::from(e).in_file(dir))?;
    let canon = path
        .canonicalize()
        .map_err(|e| Error::from(e).in_file(&path))?;
    if !canon.starts_with(&canon_dir) {
        return Err(escape(location));
    }
    Mapped::open(path)
}

#[cfg(unix)]
fn hard_linked(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.nlink() > 1
}

#[cfg(not(unix))]
fn hard_linked(_meta: &std::fs::Metadata) -> bool {
    false
}

/// `length` bytes at `offset` must lie inside a file of `size` bytes, without wrapping.
pub fn check_range(offset: u64, length: u64, size: u64) -> Result<()> {
    if length > size || offset > size - length {
        return Err(Error::new(ErrorKind::Truncated {
            need: offset.saturating_add(length),
            have: size,
        })
        .at(offset));
    }
    Ok(())
}

/// The folder external paths are relative to.
pub fn model_dir(model: &Path) -> PathBuf {
    match model.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_never_wrap() {
        assert!(check_range(0, 10, 10).is_ok());
        assert!(check_range(u64::MAX, 2, 10).is_err());
        assert!(check_range(1 << 50, 4, 10).is_err());
        assert!(check_range(8, 4, 10).is_err());
    }

    #[test]
    fn locations_must_be_plain_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "../../etc/passwd",
            "sub/../../x",
            "/etc/passwd",
            "a\\..\\b",
            "",
            "./x",
        ] {
            let e = open(dir.path(), bad).unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::PathEscape(_)), "{bad}: {e}");
        }
    }
}
