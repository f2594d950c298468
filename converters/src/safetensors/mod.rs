//! safetensors: single files and sharded HF folders, read through mmap; streaming writer.
//! Spec: <https://github.com/huggingface/safetensors#format>.

pub(crate) mod header;
pub(crate) mod index;
mod write;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use wharf_core::{Access, TensorMeta, TensorSource};

pub use header::{Entry, Header, dtype_from_str, dtype_to_str};
pub use index::{INDEX_FILE, ShardIndex};
pub use write::{
    SafetensorsWriter, ShardPlan, ShardedWriter, TapFactory, header_bytes, index_json, plan_shards,
};

use crate::error::{Error, ErrorKind, Result};
use crate::mmap::Mapped;

/// One memory-mapped safetensors file with a validated header.
#[derive(Debug)]
pub struct SafetensorsFile {
    map: Mapped,
    header: Header,
}

impl SafetensorsFile {
    /// Maps and validates `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let map = Mapped::open(path)?;
        let header = header::parse(map.bytes()).map_err(|e| e.in_file(path))?;
        Ok(SafetensorsFile { map, header })
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        self.map.path()
    }

    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        self.map.len()
    }

    /// Whether the file holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn absolute(&self, e: &Entry) -> (u64, u64) {
        let base = self.header.data_start();
        (base + e.range.0, base + e.range.1)
    }

    fn slice(&self, e: &Entry) -> Result<&[u8]> {
        let (a, b) = self.absolute(e);
        let range = usize::try_from(a).ok().zip(usize::try_from(b).ok());
        range
            .and_then(|(a, b)| self.map.bytes().get(a..b))
            .ok_or_else(|| {
                Error::new(ErrorKind::Truncated {
                    need: b,
                    have: self.map.len(),
                })
                .in_file(self.path())
                .in_tensor(&e.meta.name)
            })
    }

    /// Fails if the file changed since it was opened.
    pub fn ensure_unchanged(&self) -> Result<()> {
        self.map.ensure_unchanged()
    }
}

/// Tensors from one safetensors file or a sharded folder.
///
/// Order: shards in file-name order, tensors in data-offset order within a shard.
#[derive(Debug)]
pub struct SafetensorsSource {
    files: Vec<SafetensorsFile>,
    metas: Vec<TensorMeta>,
    location: HashMap<String, (usize, usize)>,
    warnings: Vec<String>,
}

impl SafetensorsSource {
    /// Opens a single `.safetensors` file.
    pub fn open_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_files(vec![SafetensorsFile::open(path)?], Vec::new())
    }

    /// Opens a folder: `model.safetensors.index.json` and its shards, or a single
    /// `model.safetensors` (or the only `*.safetensors` file present).
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if dir.join(INDEX_FILE).exists() {
            let index = ShardIndex::load(dir)?;
            let files = index
                .shard_paths(dir)?
                .into_iter()
                .map(SafetensorsFile::open)
                .collect::<Result<Vec<_>>>()?;
            let mut warnings = Vec::new();
            let source = Self::from_files(files, Vec::new())?;
            index.check_against(&source, dir, &mut warnings)?;
            return Ok(SafetensorsSource { warnings, ..source });
        }
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Self::open_file(single);
        }
        let found = list_safetensors(dir)?;
        match found.as_slice() {
            [one] => Self::open_file(one),
            [] => Err(Error::new(ErrorKind::UnknownFormat(
                "no .safetensors file in folder".into(),
            ))
            .in_file(dir)),
            _ => Err(Error::new(ErrorKind::Index(format!(
                "{} .safetensors files but no {INDEX_FILE}",
                found.len()
            )))
            .in_file(dir)),
        }
    }

    fn from_files(files: Vec<SafetensorsFile>, warnings: Vec<String>) -> Result<Self> {
        let mut metas = Vec::new();
        let mut location = HashMap::new();
        for (fi, f) in files.iter().enumerate() {
            for (ei, e) in f.header.entries.iter().enumerate() {
                if location.insert(e.meta.name.clone(), (fi, ei)).is_some() {
                    return Err(Error::new(ErrorKind::Duplicate {
                        what: "tensor across shards",
                        name: e.meta.name.clone(),
                    })
                    .in_file(f.path()));
                }
                metas.push(e.meta.clone());
            }
        }
        Ok(SafetensorsSource {
            files,
            metas,
            location,
            warnings,
        })
    }

    /// The shard files, in order.
    pub fn files(&self) -> &[SafetensorsFile] {
        &self.files
    }

    /// `__metadata__` of the first file.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        self.files
            .first()
            .map(|f| f.header.metadata.clone())
            .unwrap_or_default()
    }

    /// Non-fatal findings (e.g. an index whose `total_size` disagrees with the shards).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every file read, for provenance.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path().to_path_buf()).collect()
    }

    /// File and absolute byte range of a tensor.
    pub fn locate(&self, name: &str) -> Option<(&Path, u64, u64)> {
        let &(fi, ei) = self.location.get(name)?;
        let f = self.files.get(fi)?;
        let (a, b) = f.absolute(f.header.entries.get(ei)?);
        Some((f.path(), a, b))
    }

    /// Fails if any shard changed since it was opened.
    pub fn ensure_unchanged(&self) -> Result<()> {
        self.files
            .iter()
            .try_for_each(SafetensorsFile::ensure_unchanged)
    }

    fn entry(&self, name: &str) -> Result<(&SafetensorsFile, &Entry)> {
        let &(fi, ei) = self.location.get(name).ok_or_else(|| {
            Error::new(ErrorKind::Index(format!("no tensor named `{name}`"))).in_tensor(name)
        })?;
        let f = self
            .files
            .get(fi)
            .ok_or_else(|| Error::new(ErrorKind::Empty))?;
        let e = f
            .header
            .entries
            .get(ei)
            .ok_or_else(|| Error::new(ErrorKind::Empty))?;
        Ok((f, e))
    }
}

impl TensorSource for SafetensorsSource {
    fn tensors(&self) -> &[TensorMeta] {
        &self.metas
    }

    fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
        let (f, e) = self.entry(name)?;
        Ok(Cow::Borrowed(f.slice(e)?))
    }

    fn advise(&self, name: &str, access: Access) {
        if let Ok((f, e)) = self.entry(name) {
            let (a, b) = f.absolute(e);
            f.map.advise(a, b - a, access);
        }
    }

    fn stored(&self, name: &str) -> Option<wharf_core::Stored> {
        let (f, e) = self.entry(name).ok()?;
        f.slice(e).ok()?; // in the file as opened: otherwise `bytes` reports the truncation
        let (a, b) = f.absolute(e);
        Some(wharf_core::Stored {
            path: f.map.path().to_path_buf(),
            offset: a,
            len: b - a,
            identity: Some(f.map.identity()),
        })
    }

    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.location.get(name).and_then(|&(fi, ei)| {
            self.files
                .get(fi)
                .and_then(|f| f.header.entries.get(ei))
                .map(|e| &e.meta)
        })
    }
}

fn list_safetensors(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::from(e).in_file(dir))? {
        let p = entry.map_err(|e| Error::from(e).in_file(dir))?.path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests;
