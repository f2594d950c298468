//! `wharf verify`: re-hash every file against the manifest, then run the reference forward
//! pass on the bundle's own bytes and compare it with the golden recorded at export.

use std::path::Path;

use wharf_manifests::{HashReport, Manifest, Metrics, verify_dir, verify_zip};
use wharf_reference::Model;

use crate::golden::Golden;
use crate::{Error, Result};

/// The outcome of `verify`.
#[derive(Debug)]
pub struct Verified {
    /// The bundle's manifest.
    pub manifest: Manifest,
    /// Per-file results.
    pub hashes: HashReport,
    /// The reference check, run only when every file hashed correctly.
    pub metrics: Option<Metrics>,
}

impl Verified {
    /// True when every file is intact and the reference check passed.
    pub fn ok(&self) -> bool {
        self.hashes.ok() && self.metrics.as_ref().is_some_and(|m| m.passed)
    }
}

/// Verifies a bundle folder or zip.
pub fn verify(path: &Path) -> Result<Verified> {
    let is_zip = path.is_file();
    let (manifest, hashes) = if is_zip {
        verify_zip(path)?
    } else {
        verify_dir(path)?
    };
    if !hashes.ok() {
        return Ok(Verified {
            manifest,
            hashes,
            metrics: None,
        });
    }
    let metrics = if is_zip {
        let tmp = scratch_dir(path)?;
        wharf_manifests::zip::extract(path, tmp.path())?;
        let m = run_reference(tmp.path(), &manifest);
        drop(tmp);
        m?
    } else {
        run_reference(path, &manifest)?
    };
    Ok(Verified {
        manifest,
        hashes,
        metrics: Some(metrics),
    })
}

fn run_reference(dir: &Path, manifest: &Manifest) -> Result<Metrics> {
    let r = &manifest.reference;
    let bytes = std::fs::read(dir.join(&r.golden)).map_err(|e| {
        Error::Convert(wharf_converters::Error::from(e).in_file(dir.join(&r.golden)))
    })?;
    let golden = Golden::parse(&bytes)?;
    if golden.prompt_ids != r.prompt_ids {
        return Err(Error::Golden(
            "reference.json and manifest.json disagree on the prompt".into(),
        ));
    }
    let model_path = if r.model == "." {
        dir.to_path_buf()
    } else {
        dir.join(&r.model)
    };
    let mut model = Model::open(&model_path).map_err(|e| Error::Reference(e.to_string()))?;
    // A Pi verifying its own bundle: keep resident memory near one weight.
    model.release_pages(true);
    golden.measure(&model, &r.thresholds)
}

/// A scratch folder in the system temp folder (the bundle's own folder may be read-only),
/// removed on drop.
fn scratch_dir(path: &Path) -> Result<ScratchDir> {
    let base = std::env::temp_dir();
    let name = format!(
        ".{}.wharf-verify-{}",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id()
    );
    let dir = base.join(name);
    std::fs::create_dir(&dir)
        .map_err(|e| Error::Convert(wharf_converters::Error::from(e).in_file(&dir)))?;
    Ok(ScratchDir(dir))
}

#[derive(Debug)]
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
