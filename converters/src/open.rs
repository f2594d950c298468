//! Opening any input wharf reads, decided by structure (magic bytes, folder contents), never by
//! file extension alone.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wharf_core::model::ModelSpec;
use wharf_core::{Access, TensorMeta, TensorSource};

use crate::error::{Error, ErrorKind, Result};
use crate::gguf::{GgufFile, MAGIC};
use crate::hf::{HfRenamed, load_config, load_config_file};
use crate::onnx::OnnxSource;
use crate::safetensors::SafetensorsSource;
use crate::torch::{self, TorchSource};

fn folder_config(dir: &Path) -> Result<Option<(Value, ModelSpec)>> {
    if dir.join("config.json").is_file() {
        Ok(Some(load_config(dir)?))
    } else {
        Ok(None)
    }
}

/// The container formats wharf reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One `.safetensors` file.
    Safetensors,
    /// An HF folder of safetensors (single file or shards + index).
    HfFolder,
    /// A GGUF file.
    Gguf,
    /// A `torch.save` zip checkpoint (`.bin`, `.pt`, `.pth`).
    Torch,
    /// An HF folder of `pytorch_model.bin` (single or sharded with an index).
    HfTorchFolder,
    /// An ONNX model (`.onnx`), with external data beside it if it has any.
    Onnx,
}

impl Format {
    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::HfFolder => "hf-safetensors",
            Format::Gguf => "gguf",
            Format::Torch => "pytorch",
            Format::HfTorchFolder => "hf-pytorch",
            Format::Onnx => "onnx",
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
    /// A `torch.save` checkpoint or HF folder of them, with its config when the folder has one.
    Torch {
        /// The tensors.
        source: TorchSource,
        /// The folder, for HF inputs.
        dir: Option<PathBuf>,
        /// `config.json` and its validated description.
        config: Option<(Value, ModelSpec)>,
    },
    /// An ONNX model's initializers: under their own names, or under HF names when a config
    /// was given (`--config`).
    Onnx {
        /// The initializers.
        source: HfRenamed<OnnxSource>,
        /// The config file given for the export.
        config_path: Option<PathBuf>,
        /// `config.json` and its validated description.
        config: Option<(Value, ModelSpec)>,
    },
}

/// An input that is an HF model: tensors under HF names, the folder holding its config and
/// tokenizer, and the order llama.cpp's converter visits the tensors in.
pub struct HfInput<'a> {
    /// The tensors, under HF names.
    pub tensors: &'a dyn TensorSource,
    /// Tensor names in llama.cpp's visiting order.
    pub order: Vec<String>,
    /// The folder of `config.json` and the tokenizer files.
    pub dir: &'a Path,
    /// `config.json`.
    pub config: &'a Value,
    /// Its validated description.
    pub spec: &'a ModelSpec,
}

impl std::fmt::Debug for HfInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfInput")
            .field("dir", &self.dir)
            .field("tensors", &self.order.len())
            .field("arch", &self.spec.arch)
            .finish_non_exhaustive()
    }
}

fn names(src: &dyn TensorSource) -> Vec<String> {
    src.tensors().iter().map(|m| m.name.clone()).collect()
}

/// llama.cpp reads safetensors shard by shard, each sorted by name.
fn visit_order(src: &SafetensorsSource) -> Vec<String> {
    let mut out = Vec::new();
    for f in src.files() {
        let mut n: Vec<_> = f
            .header()
            .entries
            .iter()
            .map(|e| e.meta.name.clone())
            .collect();
        n.sort();
        out.extend(n);
    }
    out
}

/// Decides the format of `path` by its structure.
pub fn detect(path: &Path) -> Result<Format> {
    let meta = std::fs::metadata(path).map_err(|e| Error::from(e).in_file(path))?;
    if meta.is_dir() {
        return Ok(folder_format(path));
    }
    let mut head = Vec::with_capacity(512);
    let f = std::fs::File::open(path).map_err(|e| Error::from(e).in_file(path))?;
    f.take(512)
        .read_to_end(&mut head)
        .map_err(|e| Error::from(e).in_file(path))?;
    let h = head.as_slice();
    if h.starts_with(&MAGIC) {
        return Ok(Format::Gguf);
    }
    // RELIABILITY.md G1: the magic read with the wrong byte order.
    if h.starts_with(b"FUGG") {
        return Err(Error::new(ErrorKind::UnknownFormat(
            "magic `FUGG`: a byte-swapped (big-endian) GGUF, which is not supported".into(),
        ))
        .in_file(path));
    }
    // Every zip signature ("PK"), so that a zip with data before its first entry is judged
    // (and refused) as a zip, not as something else.
    if h.starts_with(b"PK") {
        return Ok(Format::Torch);
    }
    // Protobuf has no magic: an ONNX model is known by its extension, then parsed strictly.
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        return Ok(Format::Onnx);
    }
    // A safetensors header is a u64 length then a JSON object.
    if h.get(8) == Some(&b'{') {
        return Ok(Format::Safetensors);
    }
    if let Some(what) = torch::refused_kind(h) {
        return Err(Error::new(ErrorKind::UnknownFormat(format!("this is {what}"))).in_file(path));
    }
    if h.len() >= 8 {
        return Ok(Format::Safetensors);
    }
    Err(Error::new(ErrorKind::UnknownFormat(
        "file too small to be a checkpoint".into(),
    ))
    .in_file(path))
}

/// A folder with PyTorch weights and no safetensors is a PyTorch folder.
fn folder_format(dir: &Path) -> Format {
    let has = |f: &str| dir.join(f).exists();
    let any_safetensors = std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
    });
    if !any_safetensors && (has(torch::WEIGHTS_FILE) || has(torch::INDEX_FILE)) {
        Format::HfTorchFolder
    } else {
        Format::HfFolder
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
            Format::Torch => Ok(AnySource::Torch {
                source: TorchSource::open_file(path)?,
                dir: None,
                config: None,
            }),
            Format::HfTorchFolder => Ok(AnySource::Torch {
                source: TorchSource::open_dir(path)?,
                dir: Some(path.to_path_buf()),
                config: folder_config(path)?,
            }),
            Format::Onnx => Ok(AnySource::Onnx {
                source: HfRenamed::identity(OnnxSource::open(path)?),
                config_path: None,
                config: None,
            }),
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

    /// Opens `path` with the HF `config.json` at `config` describing it: an ONNX export's
    /// initializers are then read under HF names (the exporter's prefix stripped, buffers left
    /// out), so the export converts to every target. Other formats carry their own description
    /// (HF folders their `config.json`, GGUF its metadata) and are refused with a config.
    pub fn open_with_config(path: impl AsRef<Path>, config: Option<&Path>) -> Result<Self> {
        let path = path.as_ref();
        let Some(config_path) = config else {
            return Self::open(path);
        };
        match detect(path)? {
            Format::Onnx => {
                let (v, spec) = load_config_file(config_path)?;
                let source = HfRenamed::for_spec(OnnxSource::open(path)?, &spec)
                    .map_err(|e| e.in_file(path))?;
                Ok(AnySource::Onnx {
                    source,
                    config_path: Some(config_path.to_path_buf()),
                    config: Some((v, spec)),
                })
            }
            f => Err(Error::new(ErrorKind::UnknownFormat(format!(
                "a config is given only with an ONNX export; this {} input {}",
                f.name(),
                match f {
                    Format::Gguf => "describes itself in its metadata",
                    _ => "takes its description from config.json in its HF folder",
                }
            )))
            .in_file(path)),
        }
    }

    /// The input as an HF model, when it is one: an HF folder (safetensors or PyTorch) with
    /// `config.json`, or an ONNX export opened with its config.
    pub fn hf(&self) -> Option<HfInput<'_>> {
        match self {
            AnySource::Safetensors {
                source,
                dir: Some(dir),
                config: Some((config, spec)),
            } => Some(HfInput {
                tensors: source,
                order: visit_order(source),
                dir,
                config,
                spec,
            }),
            AnySource::Torch {
                source,
                dir: Some(dir),
                config: Some((config, spec)),
            } => Some(HfInput {
                tensors: source,
                order: names(source),
                dir,
                config,
                spec,
            }),
            AnySource::Onnx {
                source,
                config_path: Some(p),
                config: Some((config, spec)),
            } => Some(HfInput {
                tensors: source,
                order: {
                    let mut n = names(source);
                    n.sort();
                    n
                },
                dir: p.parent().unwrap_or(Path::new(".")),
                config,
                spec,
            }),
            _ => None,
        }
    }

    /// The format that was detected.
    pub fn format(&self) -> Format {
        match self {
            AnySource::Safetensors { dir: Some(_), .. } => Format::HfFolder,
            AnySource::Safetensors { .. } => Format::Safetensors,
            AnySource::Gguf(_) => Format::Gguf,
            AnySource::Torch { dir: Some(_), .. } => Format::HfTorchFolder,
            AnySource::Torch { .. } => Format::Torch,
            AnySource::Onnx { .. } => Format::Onnx,
        }
    }

    /// The validated model description, when the input carries one.
    pub fn spec(&self) -> Option<&ModelSpec> {
        match self {
            AnySource::Safetensors { config, .. }
            | AnySource::Torch { config, .. }
            | AnySource::Onnx { config, .. } => config.as_ref().map(|(_, s)| s),
            AnySource::Gguf(_) => None,
        }
    }

    /// Things the reader accepted but the user should know (an index whose `total_size`
    /// disagrees with its shards, pickle metadata dropped, ...).
    pub fn warnings(&self) -> Vec<String> {
        match self {
            AnySource::Safetensors { source, .. } => source.warnings().to_vec(),
            AnySource::Torch { source, .. } => source.warnings(),
            AnySource::Onnx { source, .. } if !source.dropped().is_empty() => vec![format!(
                "left out {} initializer(s) that are not weights: {}",
                source.dropped().len(),
                source.dropped().join(", ")
            )],
            _ => Vec::new(),
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
            AnySource::Gguf(g) => g.files().into_iter().map(Path::to_path_buf).collect(),
            AnySource::Onnx {
                source,
                config_path,
                ..
            } => {
                let mut p = source.inner().paths();
                p.extend(config_path.clone());
                p
            }
            AnySource::Torch { source, dir, .. } => {
                let mut p = source.paths();
                if let Some(d) = dir {
                    p.extend(
                        ["config.json", torch::INDEX_FILE]
                            .map(|f| d.join(f))
                            .into_iter()
                            .filter(|f| f.is_file()),
                    );
                }
                p
            }
        }
    }

    fn inner(&self) -> &dyn TensorSource {
        match self {
            AnySource::Safetensors { source, .. } => source,
            AnySource::Gguf(g) => g,
            AnySource::Torch { source, .. } => source,
            AnySource::Onnx { source, .. } => source,
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
    fn advise(&self, name: &str, access: Access) {
        self.inner().advise(name, access)
    }
    fn stored(&self, name: &str) -> Option<wharf_core::Stored> {
        self.inner().stored(name)
    }
    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.inner().meta(name)
    }
}
