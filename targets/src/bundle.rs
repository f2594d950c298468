//! A bundle being built: a folder beside the target that appears whole or not at all, whose
//! files are hashed while they stream out (no second read), closed by `manifest.json`; or the
//! same folder zipped deterministically into one file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use wharf_converters::atomic::{AtomicDir, AtomicFile, Tap};
use wharf_converters::safetensors::TapFactory;
use wharf_manifests::{FileEntry, MANIFEST_FILE, Manifest, SharedHasher};

use crate::Result;

/// A bundle folder under construction.
#[derive(Debug)]
pub struct BundleDir {
    dir: AtomicDir,
    files: Files,
}

/// The hashers of every file written, shared with the writers' tap factories.
type Files = Arc<Mutex<Vec<(String, SharedHasher)>>>;

fn register(files: &Files, name: &str) -> Tap {
    let h = SharedHasher::new();
    let tap = h.tap();
    files
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((name.to_owned(), h));
    tap
}

impl BundleDir {
    /// Starts a bundle that will appear at `target` (which must not exist).
    pub fn create(target: &Path) -> Result<Self> {
        Ok(BundleDir {
            dir: AtomicDir::create(target)?,
            files: Files::default(),
        })
    }

    /// Where the bundle's files are written until it is committed.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Registers `name` as a bundle file and returns the tap its writer must feed.
    pub fn tap(&mut self, name: &str) -> Tap {
        register(&self.files, name)
    }

    /// A tap factory for writers that create several files (shards, index).
    pub fn tap_factory(&self) -> TapFactory {
        let files = Arc::clone(&self.files);
        Box::new(move |name: &str| register(&files, name))
    }

    /// Writes a small file of the bundle.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path().join(name);
        let mut f = AtomicFile::create(&path)?;
        f.set_tap(self.tap(name));
        f.write_all(bytes)
            .map_err(|e| wharf_converters::Error::from(e).in_file(&path))?;
        f.commit()?;
        Ok(())
    }

    /// Every file written so far, sorted.
    pub fn entries(&self) -> Vec<FileEntry> {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<FileEntry> = files
            .iter()
            .map(|(path, h)| {
                let d = h.digest();
                FileEntry {
                    path: path.clone(),
                    sha256: d.sha256,
                    bytes: d.bytes,
                }
            })
            .collect();
        v.sort();
        v
    }

    /// Writes the manifest and renames the folder into place.
    pub fn commit(self, manifest: &Manifest) -> Result<PathBuf> {
        write_manifest(self.path(), manifest)?;
        let target = self.dir.target().to_path_buf();
        self.dir.commit()?;
        Ok(target)
    }

    /// Writes the manifest and zips the folder into `zip_path`; the folder itself is removed.
    pub fn commit_zip(self, manifest: &Manifest, zip_path: &Path) -> Result<PathBuf> {
        write_manifest(self.path(), manifest)?;
        let mut names: Vec<String> = self.entries().into_iter().map(|e| e.path).collect();
        names.push(MANIFEST_FILE.into());
        let out = AtomicFile::create(zip_path)?;
        let out = wharf_manifests::zip::write_zip(out, self.path(), &names)?;
        out.commit()?;
        Ok(zip_path.to_path_buf())
    }
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let path = dir.join(MANIFEST_FILE);
    let mut f = AtomicFile::create(&path)?;
    f.write_all(&manifest.to_bytes())
        .map_err(|e| wharf_converters::Error::from(e).in_file(&path))?;
    f.commit()?;
    Ok(())
}
