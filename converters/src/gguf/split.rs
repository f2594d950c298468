//! llama.cpp's split GGUF layout (`tools/gguf-split/gguf-split.cpp`, `llama_split_path`):
//! `PREFIX-00001-of-0000N.gguf`, … each a GGUF of its own. The first holds every metadata key
//! of the whole file, each holds `split.no` (u16), `split.tensors.count` (i32, the whole set's
//! tensors) and `split.count` (u16) after it — gguf-split sets the count last, which moves it
//! after the other two — and its share of the tensors in file order, each padded to 32 bytes.
//!
//! A new shard starts when the tensors of the current one (padded, metadata not counted) would
//! exceed `--split-max-size`, or every `--split-max-tensors` tensors (128 when neither is
//! given); a shard never holds zero tensors. The writer renames the shards into place only once
//! all are complete, the first one last: a set is complete whenever its first file exists.

use std::path::{Path, PathBuf};

use wharf_core::{TensorMeta, TensorSink};

use super::read::pad;
use super::value::Value;
use super::write::GgufWriter;
use super::{DEFAULT_ALIGNMENT, GgufFile};
use crate::atomic::Sealed;
use crate::error::{Error, ErrorKind, Result};

/// `split.no`: this file's index in its set, from 0.
pub const SPLIT_NO: &str = "split.no";
/// `split.count`: files in the set.
pub const SPLIT_COUNT: &str = "split.count";
/// `split.tensors.count`: tensors in the whole set.
pub const SPLIT_TENSORS: &str = "split.tensors.count";

/// gguf-split's default `--split-max-tensors`.
pub const DEFAULT_MAX_TENSORS: usize = 128;

/// How to cut a GGUF into shards (`llama-gguf-split --split` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitBy {
    /// `--split-max-size`: at most this many bytes of (padded) tensor data per shard.
    Size(u64),
    /// `--split-max-tensors`: at most this many tensors per shard.
    Tensors(usize),
}

/// `--split-max-size` as gguf-split reads it: a positive integer and `M` (10^6 bytes) or `G`
/// (10^9 bytes).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let bad = || format!("split size `{s}`: expected a positive integer followed by M or G");
    let (n, unit) = match s.strip_suffix('G') {
        Some(n) => (n, 1_000_000_000u64),
        None => (s.strip_suffix('M').ok_or_else(bad)?, 1_000_000u64),
    };
    let n: u64 = n.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    n.checked_mul(unit).ok_or_else(bad)
}

/// The file of shard `i` (from 0) of `n` for `prefix` (`llama_split_path`).
pub fn split_path(prefix: &Path, i: usize, n: usize) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!("-{:05}-of-{:05}.gguf", i + 1, n));
    PathBuf::from(s)
}

/// `out.gguf` → the prefix `out` its shards are named after.
pub fn prefix_of(output: &Path) -> PathBuf {
    match output.to_str().and_then(|s| s.strip_suffix(".gguf")) {
        Some(p) => PathBuf::from(p),
        None => output.to_path_buf(),
    }
}

/// The tensors of each shard, as index ranges of `metas` (file order).
pub fn plan(metas: &[TensorMeta], by: SplitBy) -> Result<Vec<std::ops::Range<usize>>> {
    let mut shards = Vec::new();
    let (mut start, mut size) = (0usize, 0u64);
    for (i, m) in metas.iter().enumerate() {
        let n = pad(m.nbytes()?, DEFAULT_ALIGNMENT)
            .ok_or_else(|| Error::new(ErrorKind::Layout("overflow".into())))?;
        let next = size.saturating_add(n);
        let cut = match by {
            SplitBy::Size(max) => next > max,
            SplitBy::Tensors(k) => i > 0 && k > 0 && i.is_multiple_of(k),
        };
        if cut {
            if i == start {
                return Err(Error::new(ErrorKind::Output(format!(
                    "tensor `{}` ({n} bytes) is larger than the split size: every shard needs a tensor",
                    m.name
                ))));
            }
            shards.push(start..i);
            (start, size) = (i, n);
        } else {
            size = next;
        }
    }
    shards.push(start..metas.len());
    Ok(shards)
}

/// The metadata of shard `i` of `n`: the whole file's for the first, then the split keys, in the
/// order gguf-split leaves them.
pub fn shard_kvs(
    kvs: &[(String, Value)],
    i: usize,
    n: usize,
    tensors: usize,
) -> Vec<(String, Value)> {
    let split = [SPLIT_NO, SPLIT_COUNT, SPLIT_TENSORS];
    let mut out: Vec<(String, Value)> = match i {
        0 => kvs
            .iter()
            .filter(|(k, _)| !split.contains(&k.as_str()))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let count = i32::try_from(tensors).unwrap_or(i32::MAX);
    out.push((
        SPLIT_NO.into(),
        Value::U16(u16::try_from(i).unwrap_or(u16::MAX)),
    ));
    out.push((SPLIT_TENSORS.into(), Value::I32(count)));
    out.push((
        SPLIT_COUNT.into(),
        Value::U16(u16::try_from(n).unwrap_or(u16::MAX)),
    ));
    out
}

/// Gives the tap for each shard, by file name.
pub type ShardTaps = crate::safetensors::TapFactory;

/// A GGUF output: one file at `out`, or the split set named after it (`out` without `.gguf`),
/// each file fed to its tap. Returns the sink and the files it writes, the first one first.
pub fn create(
    out: &Path,
    kvs: &[(String, Value)],
    metas: &[TensorMeta],
    by: Option<SplitBy>,
    mut taps: Option<ShardTaps>,
) -> Result<(Box<dyn TensorSink>, Vec<PathBuf>)> {
    if let Some(by) = by {
        let w = SplitWriter::create(prefix_of(out), kvs, metas, by, taps)?;
        let files = w.files();
        return Ok((Box::new(w), files));
    }
    let name = out.file_name().map(|f| f.to_string_lossy().into_owned());
    let tap = taps.as_mut().zip(name).map(|(f, name)| f(&name));
    let w = GgufWriter::create(out, kvs, metas, tap)?;
    Ok((Box::new(w), vec![out.to_path_buf()]))
}

/// A [`TensorSink`] writing a split set: shard after shard as tensors arrive, all renamed into
/// place when the last is complete (the first one last).
pub struct SplitWriter {
    prefix: PathBuf,
    kvs: Vec<(String, Value)>,
    metas: Vec<TensorMeta>,
    shards: Vec<std::ops::Range<usize>>,
    taps: Option<ShardTaps>,
    open: Option<GgufWriter>,
    next: usize,
    sealed: Vec<Sealed>,
}

impl std::fmt::Debug for SplitWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitWriter")
            .field("prefix", &self.prefix)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl SplitWriter {
    /// Plans the set `prefix-0000i-of-0000N.gguf` for `metas` (file order) cut `by`.
    pub fn create(
        prefix: impl Into<PathBuf>,
        kvs: &[(String, Value)],
        metas: &[TensorMeta],
        by: SplitBy,
        taps: Option<ShardTaps>,
    ) -> Result<Self> {
        let shards = plan(metas, by)?;
        if shards.len() > usize::from(u16::MAX) {
            return Err(Error::new(ErrorKind::Output(format!(
                "{} shards: split.count is a u16",
                shards.len()
            ))));
        }
        Ok(SplitWriter {
            prefix: prefix.into(),
            kvs: kvs.to_vec(),
            metas: metas.to_vec(),
            shards,
            taps,
            open: None,
            next: 0,
            sealed: Vec::new(),
        })
    }

    /// The shard files, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        let n = self.shards.len();
        (0..n).map(|i| split_path(&self.prefix, i, n)).collect()
    }

    /// Seals the open shard and opens the next.
    fn open_next(&mut self) -> Result<()> {
        if let Some(w) = self.open.take() {
            self.sealed.push(w.seal()?);
        }
        let n = self.shards.len();
        let Some(range) = self.shards.get(self.next).cloned() else {
            return Err(Error::new(ErrorKind::Output(
                "more tensors than planned".into(),
            )));
        };
        let path = split_path(&self.prefix, self.next, n);
        let kvs = shard_kvs(&self.kvs, self.next, n, self.metas.len());
        let name = path.file_name().map(|f| f.to_string_lossy().into_owned());
        let tap = self.taps.as_mut().zip(name).map(|(f, name)| f(&name));
        self.open = Some(GgufWriter::create(&path, &kvs, &self.metas[range], tap)?);
        self.next += 1;
        Ok(())
    }
}

impl TensorSink for SplitWriter {
    fn write(&mut self, name: &str, chunk: &[u8]) -> wharf_core::Result<()> {
        if self.open.as_ref().is_none_or(GgufWriter::is_complete) {
            self.open_next()?;
        }
        match self.open.as_mut() {
            Some(w) => w.write(name, chunk),
            None => Err(Error::new(ErrorKind::Output("no shard open".into())).into()),
        }
    }

    fn finish(mut self: Box<Self>) -> wharf_core::Result<()> {
        while self.next < self.shards.len() {
            self.open_next()?; // shards of empty tensors only
        }
        if let Some(w) = self.open.take() {
            self.sealed.push(w.seal()?);
        }
        while let Some(s) = self.sealed.pop() {
            s.commit()?;
        }
        Ok(())
    }
}

/// The shard files of the split set whose first file `first` is (just `first` for an unsplit
/// file), checking it is the first.
pub fn shard_files(first: &Path, file: &GgufFile) -> Result<Vec<PathBuf>> {
    let (Some(no), Some(count)) = (
        file.get(SPLIT_NO).and_then(Value::as_u64),
        file.get(SPLIT_COUNT).and_then(Value::as_u64),
    ) else {
        return Ok(vec![first.to_path_buf()]);
    };
    let n = count as usize;
    let name = first.to_string_lossy();
    let suffix = format!("-{:05}-of-{:05}.gguf", no + 1, n);
    let prefix = name.strip_suffix(&suffix).ok_or_else(|| {
        Error::new(ErrorKind::Metadata {
            key: SPLIT_NO.into(),
            detail: format!(
                "shard {} of {n}, but the file is not named `…{suffix}`",
                no + 1
            ),
        })
        .in_file(first)
    })?;
    if no != 0 {
        let first = split_path(Path::new(prefix), 0, n);
        return Err(Error::new(ErrorKind::Metadata {
            key: SPLIT_NO.into(),
            detail: format!(
                "this is shard {} of {n} of a split GGUF; open its first file {}",
                no + 1,
                first.display()
            ),
        })
        .in_file(first));
    }
    Ok((0..n)
        .map(|i| split_path(Path::new(prefix), i, n))
        .collect())
}
