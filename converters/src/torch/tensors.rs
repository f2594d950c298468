//! From the unpickled state dict to checked tensor byte ranges.
//!
//! A tensor is a view `(offset, size, stride)` into a storage (pytorch `torch/_utils.py`
//! `_rebuild_tensor_v2`). wharf accepts contiguous views only, checks every view lies inside its
//! storage and every storage exactly fills its record (P6, P7), and lets several tensors share a
//! storage (tied weights, views at non-zero offsets).

use std::collections::{HashMap, HashSet};

use wharf_core::TensorMeta;

use super::value::{StorageRef, TensorRef, Value};
use super::zip::{Directory, Record};
use crate::error::{Error, ErrorKind, Result, malformed};
use crate::limits::MAX_TENSORS;

/// One tensor and where its bytes are.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Name, dtype, shape.
    pub meta: TensorMeta,
    /// Storage key (the record holding the bytes).
    pub key: String,
    /// Absolute byte offset in the file.
    pub start: u64,
    /// Byte length.
    pub len: u64,
}

/// Checks the state dict `root` against the records of `dir`.
///
/// Entries whose value is not a tensor (an `epoch` counter, a nested dict) are skipped and
/// named in the returned warnings.
pub fn slots(root: Value, dir: &Directory) -> Result<(Vec<Slot>, Vec<String>)> {
    let Value::Dict(items, _) = root else {
        return Err(malformed(
            "pickle",
            format!("top-level value is a {}, not a state dict", root.kind()),
        ));
    };
    if items.len() as u64 > MAX_TENSORS {
        return Err(Error::new(ErrorKind::TooLarge {
            what: "state dict entries",
            value: items.len() as u64,
            cap: MAX_TENSORS,
        }));
    }
    let mut seen = HashSet::new();
    let mut storages: HashMap<String, StorageRef> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    let mut warnings = Vec::new();
    for (k, v) in items {
        let Value::Str(name) = k else {
            return Err(malformed(
                "pickle",
                format!("state dict key is a {}", k.kind()),
            ));
        };
        if !seen.insert(name.clone()) {
            return Err(Error::new(ErrorKind::Duplicate {
                what: "state dict key",
                name,
            }));
        }
        let Value::Tensor(t) = v else {
            warnings.push(format!("`{name}` is a {}, not a tensor: skipped", v.kind()));
            continue;
        };
        let slot = slot(&name, t, dir, &mut storages).map_err(|e| e.in_tensor(&name))?;
        out.push(slot);
    }
    if out.is_empty() {
        return Err(Error::new(ErrorKind::Empty));
    }
    Ok((out, warnings))
}

fn slot(
    name: &str,
    t: TensorRef,
    dir: &Directory,
    storages: &mut HashMap<String, StorageRef>,
) -> Result<Slot> {
    let record = storage_record(&t.storage, dir, storages)?;
    let esize = t.storage.dtype.nbytes(1)?;
    check_contiguous(&t.shape, &t.stride)?;
    let numel = t
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| layout("shape overflows"))?;
    let end = t.offset.checked_add(numel);
    if end.is_none_or(|e| e > t.storage.numel) {
        return Err(layout(format!(
            "view of {numel} elements at offset {} runs past its storage of {}",
            t.offset, t.storage.numel
        )));
    }
    let rel = t
        .offset
        .checked_mul(esize)
        .ok_or_else(|| layout("offset overflows"))?;
    let len = numel
        .checked_mul(esize)
        .ok_or_else(|| layout("size overflows"))?;
    let start = record
        .start
        .checked_add(rel)
        .ok_or_else(|| layout("offset overflows"))?;
    Ok(Slot {
        meta: TensorMeta::new(name, t.storage.dtype, t.shape),
        key: t.storage.key,
        start,
        len,
    })
}

/// The record behind `s`: it must exist, hold exactly `numel × element size` bytes, and every
/// reference to the same key must agree on dtype and size.
fn storage_record<'d>(
    s: &StorageRef,
    dir: &'d Directory,
    storages: &mut HashMap<String, StorageRef>,
) -> Result<&'d Record> {
    let record = dir.records.get(&s.key).ok_or_else(|| {
        malformed(
            "torch zip",
            format!(
                "storage `{}` has no record `{}/data/{}`",
                s.key, dir.top, s.key
            ),
        )
    })?;
    match storages.get(&s.key) {
        Some(prev) if prev != s => {
            return Err(layout(format!(
                "storage `{}` referenced as {} x {} and as {} x {}",
                s.key, prev.numel, prev.dtype, s.numel, s.dtype
            )));
        }
        Some(_) => {}
        None => {
            storages.insert(s.key.clone(), s.clone());
        }
    }
    let need = s
        .dtype
        .nbytes(s.numel)
        .map_err(|e| Error::new(ErrorKind::Size(e)))?;
    if need != record.len {
        return Err(layout(format!(
            "storage `{}` declares {} bytes ({} x {}) but its record holds {}",
            s.key, need, s.numel, s.dtype, record.len
        ))
        .at(record.start));
    }
    Ok(record)
}

/// Row-major contiguous: the stride of each dimension is the product of the later sizes.
/// Dimensions of size 1 may carry any stride (torch treats them as contiguous too).
fn check_contiguous(shape: &[u64], stride: &[i64]) -> Result<()> {
    let mut expect: u64 = 1;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && u64::try_from(s).ok() != Some(expect) {
            return Err(layout(format!(
                "strides {stride:?} for shape {shape:?} are not contiguous (wharf reads only \
                 contiguous tensors; call .contiguous() before saving)"
            )));
        }
        expect = expect
            .checked_mul(d)
            .ok_or_else(|| layout("shape overflows"))?;
    }
    Ok(())
}

fn layout(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Layout(msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguity() {
        assert!(check_contiguous(&[2, 3], &[3, 1]).is_ok());
        assert!(check_contiguous(&[1, 3], &[99, 1]).is_ok());
        assert!(check_contiguous(&[], &[]).is_ok());
        assert!(check_contiguous(&[2, 3], &[1, 2]).is_err());
        assert!(check_contiguous(&[2, 3], &[-3, 1]).is_err());
    }
}
