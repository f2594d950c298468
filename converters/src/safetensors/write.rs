//! Streaming safetensors writer: the header is computed from the declared tensors up front, then
//! bytes flow through in declared order. Sharded folders get HF's
//! `model-0000i-of-0000n.safetensors` names and a `model.safetensors.index.json`.
//!
//! The header JSON is padded with spaces to a multiple of 8 bytes, as the Python library does,
//! so the data buffer of every file is 8-byte aligned.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use wharf_core::{TensorMeta, TensorSink};

use super::header::dtype_to_str;
use super::index::INDEX_FILE;
use crate::atomic::{AtomicFile, Tap};
use crate::error::{Error, ErrorKind, Result};

/// Builds the header bytes (length prefix included) for `metas` laid out back to back.
pub fn header_bytes(metas: &[TensorMeta], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut obj = Map::new();
    if !metadata.is_empty() {
        obj.insert("__metadata__".into(), json!(metadata));
    }
    let mut offset = 0u64;
    for m in metas {
        let dtype = dtype_to_str(m.dtype).ok_or_else(|| {
            Error::new(ErrorKind::UnsupportedDType(format!(
                "{} in safetensors",
                m.dtype
            )))
            .in_tensor(&m.name)
        })?;
        let end = offset + m.nbytes().map_err(|e| Error::from(e).in_tensor(&m.name))?;
        let info = json!({"dtype": dtype, "shape": m.shape.dims(), "data_offsets": [offset, end]});
        if obj.insert(m.name.clone(), info).is_some() || m.name == "__metadata__" {
            return Err(Error::new(ErrorKind::Duplicate {
                what: "tensor",
                name: m.name.clone(),
            }));
        }
        offset = end;
    }
    let mut text = serde_json::to_vec(&Value::Object(obj))
        .map_err(|e| Error::new(ErrorKind::Unconvertible(e.to_string())))?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    Ok(out)
}

/// Writes one safetensors file atomically as a [`TensorSink`].
#[derive(Debug)]
pub struct SafetensorsWriter {
    out: AtomicFile,
    metas: Vec<TensorMeta>,
    sizes: Vec<u64>,
    current: usize,
    written: u64,
}

impl SafetensorsWriter {
    /// Starts `path` for exactly `metas`, in that order.
    pub fn create(
        path: impl AsRef<Path>,
        metas: Vec<TensorMeta>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        Self::create_tapped(path, metas, metadata, None)
    }

    /// Like [`SafetensorsWriter::create`], feeding every byte written to `tap`.
    pub fn create_tapped(
        path: impl AsRef<Path>,
        metas: Vec<TensorMeta>,
        metadata: &BTreeMap<String, String>,
        tap: Option<Tap>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let header = header_bytes(&metas, metadata).map_err(|e| e.in_file(path))?;
        let sizes = metas
            .iter()
            .map(TensorMeta::nbytes)
            .collect::<Result<Vec<_>, _>>()?;
        let len = header.len() as u64 + sizes.iter().sum::<u64>();
        let mut out = AtomicFile::create_sized(path, Some(len))?;
        if let Some(tap) = tap {
            out.set_tap(tap);
        }
        out.write_all(&header)
            .map_err(|e| Error::from(e).in_file(path))?;
        Ok(SafetensorsWriter {
            out,
            metas,
            sizes,
            current: 0,
            written: 0,
        })
    }

    fn skip_complete(&mut self) {
        while self
            .sizes
            .get(self.current)
            .is_some_and(|&s| s == self.written)
        {
            self.current += 1;
            self.written = 0;
        }
    }

    fn order_error(&self, name: &str) -> Error {
        let expected = self
            .metas
            .get(self.current)
            .map_or("<end>", |m| m.name.as_str());
        Error::new(ErrorKind::Output(format!(
            "tensor `{name}` written out of order, expected `{expected}`"
        )))
        .in_file(self.out.target())
    }

    /// Writes and renames into place; fails unless every tensor was written in full.
    pub fn commit(mut self) -> Result<()> {
        self.skip_complete();
        if self.current < self.metas.len() {
            let name = self
                .metas
                .get(self.current)
                .map(|m| m.name.clone())
                .unwrap_or_default();
            return Err(Error::new(ErrorKind::Output(format!(
                "tensor `{name}` not written in full"
            )))
            .in_file(self.out.target()));
        }
        self.out.commit()
    }
}

impl TensorSink for SafetensorsWriter {
    fn write(&mut self, name: &str, chunk: &[u8]) -> wharf_core::Result<()> {
        if self.written == self.sizes.get(self.current).copied().unwrap_or(0) {
            self.skip_complete();
        }
        let (Some(meta), Some(&size)) =
            (self.metas.get(self.current), self.sizes.get(self.current))
        else {
            return Err(self.order_error(name).into());
        };
        if meta.name != name || self.written + chunk.len() as u64 > size {
            return Err(self.order_error(name).into());
        }
        self.out
            .write_all(chunk)
            .map_err(|e| Error::from(e).in_file(self.out.target()))?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> wharf_core::Result<()> {
        Ok(self.commit()?)
    }
}

/// Which tensors go to which shard file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    /// File name and tensors, per shard.
    pub shards: Vec<(String, Vec<TensorMeta>)>,
    /// Sum of all tensor bytes.
    pub total_size: u64,
}

/// Splits `metas` (kept in order) into shards of at most `max_bytes` of tensor data each
/// (a tensor larger than the limit gets a shard of its own). One shard is `model.safetensors`.
pub fn plan_shards(metas: &[TensorMeta], max_bytes: u64) -> Result<ShardPlan> {
    let mut groups: Vec<Vec<TensorMeta>> = Vec::new();
    let mut current = 0u64;
    let mut total = 0u64;
    for m in metas {
        let n = m.nbytes()?;
        total += n;
        match groups.last_mut() {
            Some(g) if current + n <= max_bytes => {
                g.push(m.clone());
                current += n;
            }
            _ => {
                groups.push(vec![m.clone()]);
                current = n;
            }
        }
    }
    let count = groups.len();
    let shards = groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let name = if count == 1 {
                "model.safetensors".to_owned()
            } else {
                format!("model-{:05}-of-{count:05}.safetensors", i + 1)
            };
            (name, g)
        })
        .collect();
    Ok(ShardPlan {
        shards,
        total_size: total,
    })
}

/// The index JSON for a plan: `metadata.total_size` and a sorted `weight_map`, indent 2.
pub fn index_json(plan: &ShardPlan) -> String {
    let mut map = BTreeMap::new();
    for (file, metas) in &plan.shards {
        for m in metas {
            map.insert(m.name.clone(), file.clone());
        }
    }
    let v = json!({"metadata": {"total_size": plan.total_size}, "weight_map": map});
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// Gives the tap for each file a [`ShardedWriter`] writes, by file name.
pub type TapFactory = Box<dyn FnMut(&str) -> Tap + Send>;

/// A [`TensorSink`] over a whole shard plan: opens each shard in turn as tensors arrive.
pub struct ShardedWriter {
    dir: PathBuf,
    plan: ShardPlan,
    metadata: BTreeMap<String, String>,
    next_shard: usize,
    open: Option<SafetensorsWriter>,
    tap_factory: Option<TapFactory>,
    /// Whether [`TensorSink::finish`] writes the index of a plan of several shards.
    index: bool,
}

impl std::fmt::Debug for ShardedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedWriter")
            .field("dir", &self.dir)
            .field("plan", &self.plan)
            .finish()
    }
}

impl ShardedWriter {
    /// Writes `plan` into the folder `dir` (which must exist; use an `AtomicDir` for atomicity).
    pub fn new(
        dir: impl Into<PathBuf>,
        plan: ShardPlan,
        metadata: BTreeMap<String, String>,
    ) -> Self {
        ShardedWriter {
            dir: dir.into(),
            plan,
            metadata,
            next_shard: 0,
            open: None,
            tap_factory: None,
            index: true,
        }
    }

    /// Leaves the index to the caller (a format with an index of its own, as mlx-lm's).
    pub fn without_index(mut self) -> Self {
        self.index = false;
        self
    }

    /// Calls `factory(file_name)` for each file written (shards and index) to get its tap.
    pub fn with_taps(mut self, factory: TapFactory) -> Self {
        self.tap_factory = Some(factory);
        self
    }

    fn open_next(&mut self) -> Result<()> {
        if let Some(w) = self.open.take() {
            w.commit()?;
        }
        if self.next_shard == 0 {
            self.check_space()?;
        }
        let Some((file, metas)) = self.plan.shards.get(self.next_shard).cloned() else {
            return Err(Error::new(ErrorKind::Output(
                "more tensors than planned".into(),
            )));
        };
        let tap = self.tap_factory.as_mut().map(|f| f(&file));
        let path = self.dir.join(&file);
        self.open = Some(SafetensorsWriter::create_tapped(
            path,
            metas,
            &self.metadata,
            tap,
        )?);
        self.next_shard += 1;
        Ok(())
    }

    /// Refuses a plan larger than the free space, before its first byte is made.
    fn check_space(&self) -> Result<()> {
        let free = crate::leftovers::free_bytes(&self.dir);
        match free {
            Some(free) if free < self.plan.total_size => {
                Err(Error::new(ErrorKind::Io(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!(
                        "no space left for {}: its {} shards need {} bytes, {free} bytes free there",
                        crate::leftovers::shown(&self.dir).display(),
                        self.plan.shards.len(),
                        self.plan.total_size
                    ),
                ))))
            }
            _ => Ok(()),
        }
    }

    fn shard_wants(&self, name: &str) -> bool {
        self.open
            .as_ref()
            .is_some_and(|w| w.metas.iter().skip(w.current).any(|m| m.name == name))
    }
}

impl TensorSink for ShardedWriter {
    fn write(&mut self, name: &str, chunk: &[u8]) -> wharf_core::Result<()> {
        if !self.shard_wants(name) {
            self.open_next()?;
        }
        match self.open.as_mut() {
            Some(w) => w.write(name, chunk),
            None => Err(Error::new(ErrorKind::Output("no shard open".into())).into()),
        }
    }

    fn finish(mut self: Box<Self>) -> wharf_core::Result<()> {
        while self.next_shard < self.plan.shards.len() || self.open.is_some() {
            if self.next_shard < self.plan.shards.len() {
                self.open_next()?;
            } else if let Some(w) = self.open.take() {
                w.commit()?;
            }
        }
        if self.index && self.plan.shards.len() > 1 {
            let path = self.dir.join(INDEX_FILE);
            let mut f = AtomicFile::create(&path)?;
            if let Some(factory) = self.tap_factory.as_mut() {
                f.set_tap(factory(INDEX_FILE));
            }
            f.write_all(index_json(&self.plan).as_bytes())
                .map_err(|e| Error::from(e).in_file(&path))?;
            f.commit()?;
        }
        Ok(())
    }
}
