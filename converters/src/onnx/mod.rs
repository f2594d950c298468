//! ONNX models (`.onnx`): the graph's initializers as tensors, names kept. Layout: onnx
//! `onnx/onnx.proto` (`ModelProto.graph` = 7, `GraphProto.initializer` = 5,
//! `GraphProto.sparse_initializer` = 15). A small bounds-checked protobuf reader walks only
//! those messages; nodes and their subgraphs are skipped unread, so nesting depth costs nothing
//! (RELIABILITY.md O5).

mod external;
mod proto;
mod tensor;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use wharf_core::{TensorMeta, TensorSource};

pub use tensor::{Data, Initializer, dtype as onnx_dtype};

use crate::error::{Error, ErrorKind, Result, malformed};
use crate::limits::{MAX_TENSORS, ONNX_MAX_INLINE};
use crate::mmap::Mapped;
use proto::{Fields, Wire};

/// An opened ONNX model.
#[derive(Debug)]
pub struct OnnxSource {
    map: Mapped,
    inits: Vec<Initializer>,
    metas: Vec<TensorMeta>,
    index: HashMap<String, usize>,
    externals: HashMap<String, Mapped>,
}

impl OnnxSource {
    /// Maps `path`, reads every initializer and checks every payload and external file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let map = Mapped::open(path)?;
        Self::from_map(map, &external::model_dir(path)).map_err(|e| e.in_file(path))
    }

    fn from_map(map: Mapped, dir: &Path) -> Result<Self> {
        if map.len() > ONNX_MAX_INLINE {
            return Err(Error::new(ErrorKind::TooLarge {
                what: "ONNX protobuf bytes",
                value: map.len(),
                cap: ONNX_MAX_INLINE,
            }));
        }
        let inits = initializers(map.bytes())?;
        let mut index = HashMap::new();
        for (i, t) in inits.iter().enumerate() {
            if index.insert(t.meta.name.clone(), i).is_some() {
                return Err(Error::new(ErrorKind::Duplicate {
                    what: "initializer",
                    name: t.meta.name.clone(),
                }));
            }
        }
        let externals = open_externals(&inits, dir)?;
        let metas = inits.iter().map(|t| t.meta.clone()).collect();
        Ok(OnnxSource {
            map,
            inits,
            metas,
            index,
            externals,
        })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        self.map.path()
    }

    /// The model file and every external data file.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut p = vec![self.map.path().to_path_buf()];
        let mut ext: Vec<_> = self
            .externals
            .values()
            .map(|m| m.path().to_path_buf())
            .collect();
        ext.sort();
        p.extend(ext);
        p
    }

    /// The initializers and where their bytes are.
    pub fn initializers(&self) -> &[Initializer] {
        &self.inits
    }

    fn read(&self, t: &Initializer) -> Result<Cow<'_, [u8]>> {
        let buf = self.map.bytes();
        match &t.data {
            Data::Raw(a, b) => Ok(Cow::Borrowed(buf.get(*a..*b).unwrap_or_default())),
            Data::Typed(field, wires) => {
                let esize = t.meta.dtype.nbytes(1).unwrap_or(1).max(1);
                let esize = usize::try_from(esize).unwrap_or(1);
                Ok(Cow::Owned(tensor::decode(buf, *field, wires, esize)?))
            }
            Data::External {
                location,
                offset,
                length,
            } => {
                let m = self
                    .externals
                    .get(location)
                    .ok_or_else(|| malformed("onnx", "external file not opened"))?;
                let r = usize::try_from(*offset)
                    .ok()
                    .zip(usize::try_from(offset.saturating_add(*length)).ok())
                    .and_then(|(a, b)| m.bytes().get(a..b));
                r.map(Cow::Borrowed).ok_or_else(|| {
                    Error::new(ErrorKind::Truncated {
                        need: offset.saturating_add(*length),
                        have: m.len(),
                    })
                    .in_file(m.path())
                })
            }
        }
    }
}

/// `ModelProto.graph` → `GraphProto.initializer`s.
pub(crate) fn initializers(buf: &[u8]) -> Result<Vec<Initializer>> {
    let mut model = Fields::new(buf, 0, buf.len());
    let mut graph = None;
    while let Some((field, wire)) = model.next_field()? {
        if let (7, Wire::Bytes(a, b)) = (field, wire) {
            if graph.is_some() {
                return Err(malformed("onnx", "two graphs in one model"));
            }
            graph = Some((a, b));
        }
    }
    let (a, b) = graph.ok_or_else(|| malformed("onnx", "no graph"))?;
    let mut g = Fields::new(buf, a, b);
    let mut out = Vec::new();
    while let Some((field, wire)) = g.next_field()? {
        match (field, wire) {
            (5, Wire::Bytes(a, b)) => {
                if out.len() as u64 >= MAX_TENSORS {
                    return Err(Error::new(ErrorKind::TooLarge {
                        what: "initializers",
                        value: out.len() as u64,
                        cap: MAX_TENSORS,
                    }));
                }
                out.push(tensor::parse(buf, a, b).map_err(|e| e.at(a as u64))?);
            }
            (15, _) => {
                return Err(Error::new(ErrorKind::Unconvertible(
                    "sparse initializers are not supported".into(),
                )));
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(Error::new(ErrorKind::Empty));
    }
    Ok(out)
}

fn open_externals(inits: &[Initializer], dir: &Path) -> Result<HashMap<String, Mapped>> {
    let mut out: HashMap<String, Mapped> = HashMap::new();
    for t in inits {
        let Data::External {
            location,
            offset,
            length,
        } = &t.data
        else {
            continue;
        };
        if !out.contains_key(location) {
            let m = external::open(dir, location).map_err(|e| e.in_tensor(&t.meta.name))?;
            out.insert(location.clone(), m);
        }
        let size = out.get(location).map_or(0, Mapped::len);
        external::check_range(*offset, *length, size).map_err(|e| e.in_tensor(&t.meta.name))?;
    }
    Ok(out)
}

impl TensorSource for OnnxSource {
    fn tensors(&self) -> &[TensorMeta] {
        &self.metas
    }

    fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
        let t = self
            .index
            .get(name)
            .and_then(|&i| self.inits.get(i))
            .ok_or_else(|| {
                Error::new(ErrorKind::Index(format!("no tensor named `{name}`"))).in_tensor(name)
            })?;
        Ok(self.read(t).map_err(|e| e.in_tensor(name))?)
    }

    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.index.get(name).and_then(|&i| self.metas.get(i))
    }
}
