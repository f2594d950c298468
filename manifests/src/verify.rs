//! Re-hashing a bundle against its manifest.
//!
//! Every listed file must be present as a regular file with the recorded size and sha256;
//! anything else in the bundle (an extra file, a symlink, a folder entry in place of a file)
//! fails too, so a bundle means exactly what its manifest says (RELIABILITY.md F8, F9).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::hash::{Digest, hash_file, hash_reader};
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest};
use crate::{MANIFEST_FILE, paths};

/// How one file fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// Present with the recorded size and sha256.
    Ok,
    /// Listed but absent.
    Missing,
    /// Present with another size.
    SizeMismatch {
        /// Recorded size.
        expected: u64,
        /// Size found.
        found: u64,
    },
    /// Same size, other content.
    Altered {
        /// Recorded sha256.
        expected: String,
        /// sha256 found.
        found: String,
    },
    /// In the bundle but not in the manifest.
    Extra,
    /// A symlink or other non-regular file where a file should be.
    NotRegular(&'static str),
    /// Could not be read.
    Unreadable(String),
}

impl std::fmt::Display for FileStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileStatus::Ok => write!(f, "ok"),
            FileStatus::Missing => write!(f, "missing"),
            FileStatus::SizeMismatch { expected, found } => {
                write!(f, "size {found} bytes, manifest says {expected}")
            }
            FileStatus::Altered { expected, found } => {
                write!(f, "sha256 {found}, manifest says {expected}")
            }
            FileStatus::Extra => write!(f, "not in the manifest"),
            FileStatus::NotRegular(what) => write!(f, "is a {what}, not a regular file"),
            FileStatus::Unreadable(why) => write!(f, "unreadable: {why}"),
        }
    }
}

/// One file's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// Path relative to the bundle root.
    pub path: String,
    /// What was found.
    pub status: FileStatus,
}

/// Every file's result, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashReport {
    /// Per-file results.
    pub files: Vec<FileCheck>,
}

impl HashReport {
    /// True when every file is [`FileStatus::Ok`].
    pub fn ok(&self) -> bool {
        self.files.iter().all(|f| f.status == FileStatus::Ok)
    }

    /// The failing files.
    pub fn failures(&self) -> impl Iterator<Item = &FileCheck> {
        self.files.iter().filter(|f| f.status != FileStatus::Ok)
    }
}

/// What was found at a bundle path: a regular file, or something else.
enum Found {
    File,
    Other(&'static str),
}

/// Reads and checks `dir/manifest.json`, then re-hashes every file of the folder.
pub fn verify_dir(dir: &Path) -> Result<(Manifest, HashReport)> {
    let mpath = dir.join(MANIFEST_FILE);
    let meta = fs::symlink_metadata(&mpath).map_err(|e| Error::io(&mpath, e))?;
    if !meta.file_type().is_file() {
        return Err(Error::manifest(&mpath, "not a regular file"));
    }
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(Error::manifest(&mpath, "larger than 64 MiB"));
    }
    let bytes = fs::read(&mpath).map_err(|e| Error::io(&mpath, e))?;
    let manifest = Manifest::parse(&bytes, &mpath)?;
    let mut found = BTreeMap::new();
    walk(dir, dir, &mut found)?;
    found.remove(MANIFEST_FILE);
    let report = compare(&manifest, &found, |name| hash_file(&dir.join(name)));
    Ok((manifest, report))
}

fn walk(root: &Path, dir: &Path, found: &mut BTreeMap<String, Found>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| Error::io(&path, e))?;
        let name = relative_name(root, &path);
        if ty.is_dir() {
            walk(root, &path, found)?;
        } else if ty.is_file() {
            found.insert(name, Found::File);
        } else if ty.is_symlink() {
            found.insert(name, Found::Other("symlink"));
        } else {
            found.insert(name, Found::Other("special file"));
        }
    }
    Ok(())
}

fn relative_name(root: &Path, path: &Path) -> String {
    let rel: PathBuf = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Compares what was found with the manifest, hashing the files that are there.
fn compare(
    manifest: &Manifest,
    found: &BTreeMap<String, Found>,
    mut hash: impl FnMut(&str) -> Result<Digest>,
) -> HashReport {
    let mut files = Vec::new();
    for entry in &manifest.files {
        let status = match found.get(&entry.path) {
            None => FileStatus::Missing,
            Some(Found::Other(what)) => FileStatus::NotRegular(what),
            Some(Found::File) => match hash(&entry.path) {
                Err(e) => FileStatus::Unreadable(e.to_string()),
                Ok(d) if d.bytes != entry.bytes => FileStatus::SizeMismatch {
                    expected: entry.bytes,
                    found: d.bytes,
                },
                Ok(d) if d.sha256 != entry.sha256 => FileStatus::Altered {
                    expected: entry.sha256.clone(),
                    found: d.sha256,
                },
                Ok(_) => FileStatus::Ok,
            },
        };
        files.push(FileCheck {
            path: entry.path.clone(),
            status,
        });
    }
    for (name, what) in found {
        if manifest.file(name).is_none() {
            let status = match what {
                Found::File => FileStatus::Extra,
                Found::Other(w) => FileStatus::NotRegular(w),
            };
            files.push(FileCheck {
                path: name.clone(),
                status,
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    HashReport { files }
}

/// Reads and checks the manifest inside a bundle zip, then re-hashes every entry.
pub fn verify_zip(path: &Path) -> Result<(Manifest, HashReport)> {
    let mut archive = crate::zip::open(path)?;
    let mut found = BTreeMap::new();
    let mut manifest_bytes = None;
    for i in 0..archive.len() {
        let file = archive.by_index(i).map_err(|e| crate::zip::err(path, e))?;
        let name = file
            .name()
            .map_err(|e| crate::zip::err(path, e))?
            .into_owned();
        if file.is_dir() {
            continue;
        }
        paths::check(&name)?;
        if file.is_symlink() {
            found.insert(name, Found::Other("symlink"));
            continue;
        }
        if name == MANIFEST_FILE {
            let mut buf = Vec::new();
            file.take(MAX_MANIFEST_BYTES + 1)
                .read_to_end(&mut buf)
                .map_err(|e| Error::io(path, e))?;
            manifest_bytes = Some(buf);
        } else {
            found.insert(name, Found::File);
        }
    }
    let mpath = path.join(MANIFEST_FILE);
    let bytes = manifest_bytes.ok_or_else(|| Error::manifest(&mpath, "missing"))?;
    let manifest = Manifest::parse(&bytes, &mpath)?;
    let report = compare(&manifest, &found, |name| {
        let file = archive
            .by_name(name)
            .map_err(|e| crate::zip::err(path, e))?;
        hash_reader(file).map_err(|e| Error::io(path.join(name), e))
    });
    Ok((manifest, report))
}
