//! Opening any input wharf reads, decided by structure (magic bytes, folder contents), never by
//! file extension alone.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wharf_core::model::ModelSpec;
use wharf_core::{TensorMeta, TensorSource};

use crate::error::{Error, ErrorKind, Result};
use crate::gguf::{GgufFile, MAGIC};
use crate::hf::load_config;
use crate::safetensors::SafetensorsSource;

/// The container formats wharf reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One `.safetensors` file.
    Safetensors,
    /// An HF folder of safetensors (single file or shards + index).
    HfFolder,
    /// A GGUF file.
    Gguf,
}

impl Format {
    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::HfFolder => "hf-safetensors",
            Format::Gguf => "gguf",
        }
    }
}

/// An opened input of any supported format.
// One per opened input, never in a collection: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnySource {
    /// A safetensors file or HF folder, with its config when the folder has one.
    Safetensors {
        /// The tensors.
        source: SafetensorsSource,
        /// The folder, for HF inputs.
        dir: Option<PathBuf>,
        /// `config.json` and its validated description.
        config: Option<(Value, ModelSpec)>,
    },
    /// A GGUF file.
    Gguf(GgufFile),
}

/// Decides the format of `path` by its structure.
pub fn detect(path: &Path) -> Result<Format> {
    let meta = std::fs::metadata(path).map_err(|e| Error::from(e).in_file(path))?;
    if meta.is_dir() {
        return Ok(Format::HfFolder);
    }
    let mut head = [0u8; 8];
    let mut f = std::fs::File::open(path).map_err(|e| Error::from(e).in_file(path))?;
    let n = f
        .read(&mut head)
        .map_err(|e| Error::from(e).in_file(path))?;
    match head.get(..n) {
        Some(h) if h.starts_with(&MAGIC) => Ok(Format::Gguf),
        Some(h) if h.len() == 8 => Ok(Format::Safetensors),
        _ => Err(Error::new(ErrorKind::UnknownFormat(
            "file too small to be a checkpoint".into(),
        ))
        .in_file(path)),
    }
}

impl AnySource {
    /// Opens `path` as whatever it is.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        match detect(path)? {
            Format::Gguf => Ok(AnySource::Gguf(GgufFile::open(path)?)),
            Format::Safetensors => {
                let source = SafetensorsSource::open_file(path)?;
                Ok(AnySource::Safetensors {
                    source,
                    dir: None,
                    config: None,
                })
            }
            Format::HfFolder => {
                let source = SafetensorsSource::open_dir(path)?;
                let config = if path.join("config.json").is_file() {
                    Some(load_config(path)?)
                } else {
                    None
                };
                Ok(AnySource::Safetensors {
                    source,
                    dir: Some(path.to_path_buf()),
                    config,
                })
            }
        }
    }

    /// The format that was detected.
    pub fn format(&self) -> Format {
        match self {
            AnySource::Safetensors { dir: Some(_), .. } => Format::HfFolder,
            AnySource::Safetensors { .. } => Format::Safetensors,
            AnySource::Gguf(_) => Format::Gguf,
        }
    }

    /// The validated model description, when the input carries one.
    pub fn spec(&self) -> Option<&ModelSpec> {
        match self {
            AnySource::Safetensors { config, .. } => config.as_ref().map(|(_, s)| s),
            AnySource::Gguf(_) => None,
        }
    }

    /// Every file the input was read from.
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            AnySource::Safetensors { source, dir, .. } => {
                let mut p = source.paths();
                if let Some(d) = dir {
                    p.extend(
                        ["config.json", "model.safetensors.index.json"]
                            .map(|f| d.join(f))
                            .into_iter()
                            .filter(|f| f.is_file()),
                    );
                }
                p
            }
            AnySource::Gguf(g) => vec![g.path().to_path_buf()],
        }
    }

    fn inner(&self) -> &dyn TensorSource {
        match self {
            AnySource::Safetensors { source, .. } => source,
            AnySource::Gguf(g) => g,
        }
    }
}

impl TensorSource for AnySource {
    fn tensors(&self) -> &[TensorMeta] {
        self.inner().tensors()
    }
    fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
        self.inner().bytes(name)
    }
    fn release(&self, name: &str) {
        self.inner().release(name)
    }
    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.inner().meta(name)
    }
}
