//! GGUF v2/v3: reader and streaming writer (FORMATS.md b1, ggml `docs/gguf.md`, `src/gguf.cpp`).
//!
//! Tensor shapes are kept outer-first like every other wharf tensor; GGUF's innermost-first
//! `ne` order exists only at the byte level, in [`read`] and [`write`].

mod cursor;
pub(crate) mod read;
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

/// A memory-mapped, validated GGUF file.
#[derive(Debug)]
pub struct GgufFile {
    map: Mapped,
    version: u32,
    kvs: Vec<(String, Value)>,
    tensors: Vec<GgufTensor>,
    metas: Vec<TensorMeta>,
    by_name: HashMap<String, usize>,
    alignment: u64,
    data_start: u64,
}

impl GgufFile {
    /// Maps and validates `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let map = Mapped::open(path)?;
        let p = read::parse(map.bytes()).map_err(|e| e.in_file(path))?;
        let metas = p.tensors.iter().map(|t| t.meta.clone()).collect();
        let by_name = p
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.meta.name.clone(), i))
            .collect();
        Ok(GgufFile {
            map,
            version: p.version,
            kvs: p.kvs,
            tensors: p.tensors,
            metas,
            by_name,
            alignment: p.alignment,
            data_start: p.data_start,
        })
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

    /// Where the data section starts.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        self.map.path()
    }

    /// Fails if the file changed since it was opened.
    pub fn ensure_unchanged(&self) -> Result<()> {
        self.map.ensure_unchanged()
    }

    fn info(&self, name: &str) -> Result<&GgufTensor> {
        self.by_name
            .get(name)
            .and_then(|&i| self.tensors.get(i))
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
        let t = self.info(name)?;
        let start = self.data_start + t.offset;
        let slice = usize::try_from(start)
            .ok()
            .zip(usize::try_from(start + t.nbytes).ok())
            .and_then(|(a, b)| self.map.bytes().get(a..b));
        let bytes = slice.ok_or_else(|| {
            Error::new(ErrorKind::Truncated {
                need: start + t.nbytes,
                have: self.map.len(),
            })
            .in_file(self.path())
            .in_tensor(name)
        })?;
        Ok(Cow::Borrowed(bytes))
    }

    fn advise(&self, name: &str, access: Access) {
        if let Ok(t) = self.info(name) {
            self.map
                .advise(self.data_start + t.offset, t.nbytes, access);
        }
    }

    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.by_name.get(name).and_then(|&i| self.metas.get(i))
    }
}

#[cfg(test)]
mod tests;
