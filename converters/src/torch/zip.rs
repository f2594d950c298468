//! The zip directory of a `torch.save` checkpoint (pytorch `torch/serialization.py`
//! `_save` with `_use_new_zipfile_serialization`; the writer is caffe2's
//! `PyTorchStreamWriter`): `<top>/data.pkl`, `<top>/data/<key>` storage records, and a few
//! small files (`byteorder`, `version`, `.format_version`, `.storage_alignment`).
//!
//! The `zip` crate reads the central directory; wharf then insists on what torch writes and
//! nothing looser (RELIABILITY.md Z1-Z8): no data before the first entry, unique names,
//! local headers that agree with the central directory and do not overlap, only stored
//! (uncompressed), unencrypted regular files, every name inside one top folder. Record bytes
//! are later read straight from the memory map at the offsets checked here.

use std::collections::HashMap;
use std::io::Cursor;

use zip::{CompressionMethod, ZipArchive};

use crate::error::{Error, ErrorKind, Result, malformed};
use crate::limits::TORCH_MAX_ENTRIES;

/// One stored entry: where its bytes are in the file.
#[derive(Debug, Clone)]
pub struct Record {
    /// Full entry name.
    pub name: String,
    /// Absolute offset of the first data byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// CRC-32 from the central directory.
    pub crc: u32,
}

/// The checked directory of a torch zip.
#[derive(Debug)]
pub struct Directory {
    /// The top folder every entry lives in (torch uses the file stem, e.g. `archive`).
    pub top: String,
    /// `<top>/data.pkl`.
    pub pickle: Record,
    /// `<top>/byteorder`, when present.
    pub byteorder: Option<Record>,
    /// Storage records by key (`<top>/data/<key>`).
    pub records: HashMap<String, Record>,
}

fn zip_err(detail: impl std::fmt::Display) -> Error {
    malformed("zip", detail.to_string())
}

/// Reads and checks the directory of the zip in `bytes`.
pub fn read_directory(bytes: &[u8]) -> Result<Directory> {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(zip_err)?;
    if archive.offset() != 0 {
        return Err(zip_err(format!(
            "{} bytes before the first entry",
            archive.offset()
        )));
    }
    if archive.len() > TORCH_MAX_ENTRIES {
        return Err(Error::new(ErrorKind::TooLarge {
            what: "zip entries",
            value: archive.len() as u64,
            cap: TORCH_MAX_ENTRIES as u64,
        }));
    }
    if archive.has_duplicate_names() {
        return Err(Error::new(ErrorKind::Duplicate {
            what: "zip entry",
            // The zip crate keeps one entry per name, so the duplicate itself is gone by now.
            name: "(a name the central directory lists twice)".into(),
        }));
    }
    // Local headers must match the central directory, entries must not overlap, and no local
    // header may hide between them (Z4, Z5, Z7).
    archive.validate_header_consistency().map_err(zip_err)?;
    let mut entries = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        if let Some(r) = entry(&mut archive, i, bytes.len() as u64)? {
            entries.push(r);
        }
    }
    organise(entries)
}

/// One entry, checked; `None` for a directory entry.
fn entry(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    i: usize,
    file_len: u64,
) -> Result<Option<Record>> {
    let f = archive.by_index_raw(i).map_err(zip_err)?;
    let name = std::str::from_utf8(f.name_raw())
        .map_err(|_| zip_err("entry name is not UTF-8"))?
        .to_owned();
    check_name(&name)?;
    if f.is_symlink() {
        return Err(Error::new(ErrorKind::Unsafe {
            what: format!("zip symlink entry `{name}`"),
        }));
    }
    if f.encrypted() {
        return Err(Error::new(ErrorKind::Unsafe {
            what: format!("encrypted zip entry `{name}`"),
        }));
    }
    if f.is_dir() {
        return Ok(None);
    }
    if f.compression() != CompressionMethod::Stored || f.size() != f.compressed_size() {
        return Err(zip_err(format!(
            "entry `{name}` is compressed ({}); torch stores records uncompressed",
            f.compression()
        )));
    }
    let start = f
        .data_start()
        .ok_or_else(|| zip_err(format!("entry `{name}` has no data offset")))?;
    let end = start.checked_add(f.size());
    if end.is_none_or(|e| e > file_len) {
        return Err(Error::new(ErrorKind::Truncated {
            need: end.unwrap_or(u64::MAX),
            have: file_len,
        })
        .at(start));
    }
    Ok(Some(Record {
        name,
        start,
        len: f.size(),
        crc: f.crc32(),
    }))
}

/// Entry names must be relative, `/`-separated, without `.`/`..`/empty parts, backslashes,
/// drive letters or NUL (Z1).
fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains(['\\', '\0', ':'])
        || name
            .trim_end_matches('/')
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..");
    if bad {
        return Err(Error::new(ErrorKind::PathEscape(name.to_owned())));
    }
    Ok(())
}

fn organise(entries: Vec<Record>) -> Result<Directory> {
    let top = entries
        .first()
        .and_then(|r| r.name.split_once('/'))
        .map(|(t, _)| t.to_owned())
        .ok_or_else(|| zip_err("no `<folder>/data.pkl` entry"))?;
    let prefix = format!("{top}/");
    let mut pickle = None;
    let mut byteorder = None;
    let mut records = HashMap::new();
    for r in entries {
        let Some(rest) = r.name.strip_prefix(&prefix) else {
            return Err(zip_err(format!("entry `{}` is outside `{top}/`", r.name)));
        };
        if rest == "constants.pkl" || rest.starts_with("code/") {
            return Err(Error::new(ErrorKind::UnknownFormat(
                "this is a TorchScript archive (torch.jit.save): it holds code, not a state \
                 dict; export the model's state_dict() with torch.save or safetensors instead"
                    .into(),
            )));
        }
        match rest {
            "data.pkl" => pickle = Some(r),
            "byteorder" => byteorder = Some(r),
            _ => {
                if let Some(key) = rest.strip_prefix("data/") {
                    records.insert(key.to_owned(), r);
                }
            }
        }
    }
    let pickle = pickle.ok_or_else(|| zip_err(format!("no `{top}/data.pkl` entry")))?;
    Ok(Directory {
        top,
        pickle,
        byteorder,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_are_refused() {
        for bad in [
            "../../x",
            "/abs",
            "C:\\x",
            "a\\..\\..\\x",
            "a/\0b",
            "a/../b",
            "a//b",
            "",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("archive/data/0").is_ok());
    }
}
