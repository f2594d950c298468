//! Streaming GGUF writer: header and tensor infos from the declared layout, then tensor bytes in
//! declared order, each padded with zeros to the alignment (the last one too, as `gguf_write_out`
//! and gguf-py do).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use wharf_core::{TensorMeta, TensorSink};

use super::read::pad;
use super::types::ggml_of_dtype;
use super::value::Value;
use super::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC};
use crate::atomic::{AtomicFile, Sealed, Tap};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::GGML_MAX_NAME;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(t, items) => {
            out.extend_from_slice(&(*t as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| put_value(out, i));
        }
    }
}

fn check_kvs(kvs: &[(String, Value)]) -> Result<u64> {
    let mut seen = HashSet::new();
    for (k, v) in kvs {
        let bad = |detail: &str| {
            Error::new(ErrorKind::Metadata {
                key: k.clone(),
                detail: detail.into(),
            })
        };
        if k.is_empty() || !seen.insert(k.as_str()) {
            return Err(bad("empty or duplicate key"));
        }
        if let Value::Array(t, items) = v
            && items.iter().any(|i| i.value_type() != *t)
        {
            return Err(bad(
                "array elements must all have the array's type, and not be arrays",
            ));
        }
    }
    match kvs.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
        None => Ok(DEFAULT_ALIGNMENT),
        Some((_, Value::U32(a))) if a.is_power_of_two() => Ok((*a).into()),
        Some(_) => Err(Error::new(ErrorKind::Metadata {
            key: ALIGNMENT_KEY.into(),
            detail: "must be a u32 power of two".into(),
        })),
    }
}

fn put_info(out: &mut Vec<u8>, m: &TensorMeta, offset: u64) -> Result<u64> {
    let err = |kind| Error::new(kind).in_tensor(&m.name);
    if m.name.len() >= GGML_MAX_NAME {
        return Err(err(ErrorKind::Unconvertible(
            "GGUF tensor names are shorter than 64 bytes".into(),
        )));
    }
    let id = ggml_of_dtype(m.dtype)
        .ok_or_else(|| err(ErrorKind::UnsupportedDType(format!("{} in GGUF", m.dtype))))?;
    if m.shape.rank() > 4 {
        return Err(err(ErrorKind::Unconvertible(
            "GGUF tensors have at most 4 dimensions".into(),
        )));
    }
    m.dtype
        .row_bytes(m.shape.row_len())
        .map_err(|e| err(e.into()))?;
    put_str(out, &m.name);
    let dims = m.shape.dims();
    out.extend_from_slice(&(dims.len().max(1) as u32).to_le_bytes());
    if dims.is_empty() {
        out.extend_from_slice(&1u64.to_le_bytes());
    }
    dims.iter()
        .rev()
        .for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    m.nbytes().map_err(|e| err(e.into()))
}

/// The whole header (magic to the padded start of the data section) and the alignment.
pub fn header_bytes(kvs: &[(String, Value)], tensors: &[TensorMeta]) -> Result<(Vec<u8>, u64)> {
    let align = check_kvs(kvs)?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        put_str(&mut out, k);
        out.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
        put_value(&mut out, v);
    }
    let mut seen = HashSet::new();
    let mut offset = 0u64;
    for m in tensors {
        if !seen.insert(m.name.as_str()) {
            return Err(Error::new(ErrorKind::Duplicate {
                what: "tensor",
                name: m.name.clone(),
            }));
        }
        let n = put_info(&mut out, m, offset)?;
        offset = pad(offset + n, align).ok_or_else(|| ErrorKind::Layout("overflow".into()))?;
    }
    let start = pad(out.len() as u64, align).ok_or_else(|| ErrorKind::Layout("overflow".into()))?;
    out.resize(start as usize, 0);
    Ok((out, align))
}

/// Writes one GGUF file atomically as a [`TensorSink`].
#[derive(Debug)]
pub struct GgufWriter {
    out: AtomicFile,
    tensors: Vec<(String, u64)>,
    align: u64,
    current: usize,
    written: u64,
}

impl GgufWriter {
    /// Starts `path` with `kvs` (in order) and exactly `tensors` (in order).
    pub fn create(
        path: impl AsRef<Path>,
        kvs: &[(String, Value)],
        tensors: &[TensorMeta],
        tap: Option<Tap>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let (header, align) = header_bytes(kvs, tensors).map_err(|e| e.in_file(path))?;
        let sizes = tensors
            .iter()
            .map(|m| Ok((m.name.clone(), m.nbytes()?)))
            .collect::<Result<Vec<_>>>()?;
        let len = sizes
            .iter()
            .try_fold(header.len() as u64, |at, (_, n)| pad(at + n, align));
        let mut out = AtomicFile::create_sized(path, len)?;
        if let Some(tap) = tap {
            out.set_tap(tap);
        }
        out.write_all(&header)
            .map_err(|e| Error::from(e).in_file(path))?;
        Ok(GgufWriter {
            out,
            tensors: sizes,
            align,
            current: 0,
            written: 0,
        })
    }

    fn close_complete(&mut self) -> Result<()> {
        while let Some((_, size)) = self.tensors.get(self.current) {
            if self.written != *size {
                break;
            }
            let padded = pad(*size, self.align).unwrap_or(*size);
            let zeros = vec![0u8; (padded - size) as usize];
            self.out
                .write_all(&zeros)
                .map_err(|e| Error::from(e).in_file(self.out.target()))?;
            self.current += 1;
            self.written = 0;
        }
        Ok(())
    }

    /// Renames into place; fails unless every tensor was written in full.
    pub fn commit(self) -> Result<()> {
        self.seal()?.commit()
    }

    /// Completes and syncs the file without renaming it into place (a shard of a split set,
    /// renamed with the others); fails unless every tensor was written in full.
    pub fn seal(mut self) -> Result<Sealed> {
        self.close_complete()?;
        if let Some((name, _)) = self.tensors.get(self.current) {
            return Err(Error::new(ErrorKind::Output(format!(
                "tensor `{name}` not written in full"
            )))
            .in_file(self.out.target()));
        }
        self.out.seal()
    }

    /// Whether every tensor was written in full.
    pub fn is_complete(&self) -> bool {
        self.tensors
            .get(self.current)
            .is_none_or(|(_, s)| self.current + 1 == self.tensors.len() && *s == self.written)
    }
}

impl TensorSink for GgufWriter {
    fn write(&mut self, name: &str, chunk: &[u8]) -> wharf_core::Result<()> {
        if self
            .tensors
            .get(self.current)
            .is_some_and(|(_, s)| *s == self.written)
        {
            self.close_complete()?;
        }
        match self.tensors.get(self.current) {
            Some((n, size)) if n == name && self.written + chunk.len() as u64 <= *size => {}
            other => {
                let expected = other.map_or("<end>", |(n, _)| n.as_str());
                return Err(Error::new(ErrorKind::Output(format!(
                    "tensor `{name}` written out of order or too long, expected `{expected}`"
                )))
                .in_file(self.out.target())
                .into());
            }
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
