//! Deterministic bundle zips: stored entries, sorted names, fixed 1980-01-01 times, mode 0644,
//! no extra fields, so the same bundle always zips to the same bytes.
//! Reading refuses duplicate names, unsafe names and symlink entries (RELIABILITY.md Z1, Z3).

use std::fs::{self, File};
use std::io::{self, Seek, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use crate::error::{Error, Result};
use crate::paths;

/// A zip error on `path` as ours.
pub(crate) fn err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Zip {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// Opens a bundle zip, refusing duplicate entry names.
pub fn open(path: &Path) -> Result<ZipArchive<File>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let archive = ZipArchive::new(file).map_err(|e| err(path, e))?;
    if archive.has_duplicate_names() {
        return Err(err(path, "duplicate entry names"));
    }
    Ok(archive)
}

fn options(bytes: u64) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(DateTime::DEFAULT)
        .unix_permissions(0o644)
        .large_file(bytes >= u64::from(u32::MAX))
}

/// Writes the files `names` (relative to `dir`) into `out` as a zip, in sorted order.
pub fn write_zip<W: Write + Seek>(out: W, dir: &Path, names: &[String]) -> Result<W> {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    let mut zip = ZipWriter::new(out);
    for name in sorted {
        paths::check(name)?;
        let path = dir.join(name);
        let bytes = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
        zip.start_file(name.as_str(), options(bytes))
            .map_err(|e| err(&path, e))?;
        let mut f = File::open(&path).map_err(|e| Error::io(&path, e))?;
        io::copy(&mut f, &mut zip).map_err(|e| Error::io(&path, e))?;
    }
    zip.finish().map_err(|e| err(dir, e))
}

/// Extracts the regular-file entries of a bundle zip into the empty folder `into`.
///
/// Call after [`crate::verify_zip`] passed: names are checked again here anyway.
pub fn extract(path: &Path, into: &Path) -> Result<()> {
    let mut archive = open(path)?;
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(|e| err(path, e))?;
        if file.is_dir() || file.is_symlink() {
            continue;
        }
        let name = file.name().map_err(|e| err(path, e))?.into_owned();
        paths::check(&name)?;
        let dest = into.join(&name);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
            .map_err(|e| Error::io(&dest, e))?;
        io::copy(&mut file, &mut out).map_err(|e| Error::io(&dest, e))?;
    }
    Ok(())
}
