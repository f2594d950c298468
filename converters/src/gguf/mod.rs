//! GGUF v2/v3: reader and streaming writer (FORMATS.md b1, ggml `docs/gguf.md`, `src/gguf.cpp`).
//!
//! Tensor shapes are kept outer-first like every other wharf tensor; GGUF's innermost-first
//! `ne` order exists only at the byte level, in [`read`] and [`write`].

mod cursor;
pub(crate) mod read;
pub mod split;
mod types;
mod value;
mod write;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use wharf_core::{Access, TensorMeta, TensorSource};

pub use types::{dtype_of_ggml, ggml_of_dtype, is_removed};
pub use value::{Value, ValueType};
pub use write::{GgufWriter, header_bytes};

use crate::error::{Error, ErrorKind, Result};
use crate::mmap::Mapped;

/// `"GGUF"`.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The key that sets the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// Alignment when [`ALIGNMENT_KEY`] is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// One tensor-info entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensor {
    /// Name, dtype and outer-first shape.
    pub meta: TensorMeta,
    /// The ggml type id as stored.
    pub ggml_type: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
    /// Bytes of data (without padding).
    pub nbytes: u64,
}

/// One mapped file of a GGUF (the only one, or a shard of a split set).
#[derive(Debug)]
struct Part {
    map: Mapped,
    data_start: u64,
}

/// A memory-mapped, validated GGUF file, or split set (`split.rs`) opened by its first file:
/// metadata of the first, tensors of all.
#[derive(Debug)]
pub struct GgufFile {
    parts: Vec<Part>,
    version: u32,
    kvs: Vec<(String, Value)>,
    tensors: Vec<GgufTensor>,
    /// The part each tensor is in.
    part_of: Vec<usize>,
    metas: Vec<TensorMeta>,
    by_name: HashMap<String, usize>,
    alignment: u64,
}

impl GgufFile {
    /// Maps and validates `path`; the first file of a split set opens the whole set (the
    /// others are found by name and checked to belong to it).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_as(path.as_ref(), true)
    }

    /// Maps and validates one file only, a shard of a split set included (its own metadata
    /// and tensors).
    pub fn open_one(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_as(path.as_ref(), false)
    }

    fn open_as(path: &Path, whole_set: bool) -> Result<Self> {
        let map = Mapped::open(path)?;
        let p = read::parse(map.bytes()).map_err(|e| e.in_file(path))?;
        let mut g = GgufFile {
            version: p.version,
            part_of: vec![0; p.tensors.len()],
            tensors: p.tensors,
            kvs: p.kvs,
            alignment: p.alignment,
            parts: vec![Part {
                map,
                data_start: p.data_start,
            }],
            metas: Vec::new(),
            by_name: HashMap::new(),
        };
        let files = match whole_set {
            true => split::shard_files(path, &g)?,
            false => vec![path.to_path_buf()],
        };
        for (i, f) in files.iter().enumerate().skip(1) {
            g.add_shard(f, i, files.len())?;
        }
        g.check_set(files.len())?;
        g.metas = g.tensors.iter().map(|t| t.meta.clone()).collect();
        for (i, t) in g.tensors.iter().enumerate() {
            if g.by_name.insert(t.meta.name.clone(), i).is_some() {
                let what = "tensor";
                let name = t.meta.name.clone();
                return Err(Error::new(ErrorKind::Duplicate { what, name }).in_file(path));
            }
        }
        Ok(g)
    }

    /// Adds shard `i` of `n` of a split set.
    fn add_shard(&mut self, path: &Path, i: usize, n: usize) -> Result<()> {
        let map = Mapped::open(path)?;
        let p = read::parse(map.bytes()).map_err(|e| e.in_file(path))?;
        let get = |k: &str| {
            p.kvs
                .iter()
                .find(|(key, _)| key == k)
                .and_then(|(_, v)| v.as_u64())
        };
        let expect = [(split::SPLIT_NO, i as u64), (split::SPLIT_COUNT, n as u64)];
        for (key, want) in expect {
            if get(key) != Some(want) {
                let detail = format!("{:?} where shard {} of {n} has {want}", get(key), i + 1);
                let key = key.into();
                return Err(Error::new(ErrorKind::Metadata { key, detail }).in_file(path));
            }
        }
        let total = self.get(split::SPLIT_TENSORS).and_then(Value::as_u64);
        if get(split::SPLIT_TENSORS) != total {
            let detail = format!(
                "{:?} where the first shard has {total:?}",
                get(split::SPLIT_TENSORS)
            );
            let key = split::SPLIT_TENSORS.into();
            return Err(Error::new(ErrorKind::Metadata { key, detail }).in_file(path));
        }
        self.part_of
            .extend(std::iter::repeat_n(self.parts.len(), p.tensors.len()));
        self.tensors.extend(p.tensors);
        self.parts.push(Part {
            map,
            data_start: p.data_start,
        });
        Ok(())
    }

    /// A split set holds exactly the tensors its `split.tensors.count` announces.
    fn check_set(&self, n: usize) -> Result<()> {
        let total = self.get(split::SPLIT_TENSORS).and_then(Value::as_u64);
        match total {
            Some(t) if n > 1 && t != self.tensors.len() as u64 => {
                let detail = format!("{t}, but the {n} shards hold {}", self.tensors.len());
                let key = split::SPLIT_TENSORS.into();
                Err(Error::new(ErrorKind::Metadata { key, detail }).in_file(self.path()))
            }
            _ => Ok(()),
        }
    }

    /// Every file: the one opened, then the other shards of its set.
    pub fn files(&self) -> Vec<&Path> {
        self.parts.iter().map(|p| p.map.path()).collect()
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Metadata in file order.
    pub fn kvs(&self) -> &[(String, Value)] {
        &self.kvs
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Tensor-info entries in file order.
    pub fn infos(&self) -> &[GgufTensor] {
        &self.tensors
    }

    /// The data alignment.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Where the data section of the (first) file starts.
    pub fn data_start(&self) -> u64 {
        self.parts[0].data_start
    }

    /// The file path (the first file of a split set).
    pub fn path(&self) -> &Path {
        self.parts[0].map.path()
    }

    /// Fails if a file changed since it was opened.
    pub fn ensure_unchanged(&self) -> Result<()> {
        self.parts.iter().try_for_each(|p| p.map.ensure_unchanged())
    }

    /// A tensor's entry and the part holding it.
    fn info(&self, name: &str) -> Result<(&GgufTensor, &Part)> {
        self.by_name
            .get(name)
            .and_then(|&i| Some((self.tensors.get(i)?, self.parts.get(self.part_of[i])?)))
            .ok_or_else(|| {
                Error::new(ErrorKind::Index(format!("no tensor named `{name}`"))).in_tensor(name)
            })
    }
}

impl TensorSource for GgufFile {
    fn tensors(&self) -> &[TensorMeta] {
        &self.metas
    }

    fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
        let (t, part) = self.info(name)?;
        let start = part.data_start + t.offset;
        let slice = usize::try_from(start)
            .ok()
            .zip(usize::try_from(start + t.nbytes).ok())
            .and_then(|(a, b)| part.map.bytes().get(a..b));
        let bytes = slice.ok_or_else(|| {
            Error::new(ErrorKind::Truncated {
                need: start + t.nbytes,
                have: part.map.len(),
            })
            .in_file(part.map.path())
            .in_tensor(name)
        })?;
        Ok(Cow::Borrowed(bytes))
    }

    fn advise(&self, name: &str, access: Access) {
        if let Ok((t, part)) = self.info(name) {
            part.map
                .advise(part.data_start + t.offset, t.nbytes, access);
        }
    }

    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.by_name.get(name).and_then(|&i| self.metas.get(i))
    }
}

#[cfg(test)]
mod tests;
