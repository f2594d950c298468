//! GGUF v2/v3 parsing with the validation of RELIABILITY.md G1-G16: every count is bounded by
//! the bytes that remain before anything is allocated, sizes use checked arithmetic, and the
//! data section must be exactly the tensors, each padded to the alignment.

use std::collections::HashSet;

use wharf_core::{Shape, TensorMeta};

use super::cursor::Cursor;
use super::types::{dtype_of_ggml, is_removed};
use super::value::{Value, ValueType};
use super::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GgufTensor, MAGIC};
use crate::error::{Error, ErrorKind, Result, malformed};
use crate::limits::{
    GGML_MAX_DIMS, GGML_MAX_NAME, GGUF_MAX_ARRAY, GGUF_MAX_KEY, GGUF_MAX_STRING, MAX_KVS,
    MAX_TENSORS,
};

/// What the header and tensor infos say, validated against the file length.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub version: u32,
    pub kvs: Vec<(String, Value)>,
    pub tensors: Vec<GgufTensor>,
    pub alignment: u64,
    pub data_start: u64,
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed> {
    let mut c = Cursor::new(bytes);
    let version = header(&mut c)?;
    let n_tensors = count(&mut c, "tensor count", MAX_TENSORS, 24)?;
    let n_kv = count(&mut c, "metadata count", MAX_KVS, 13)?;
    let kvs = read_kvs(&mut c, n_kv)?;
    let alignment = alignment(&kvs)?;
    let infos = read_infos(&mut c, n_tensors)?;
    let data_start = pad(c.pos(), alignment).ok_or_else(|| ErrorKind::Layout("overflow".into()))?;
    let end = check_offsets(&infos, alignment, data_start)?;
    let unpadded = infos.last().map_or(0, |t| t.offset + t.nbytes);
    check_length(
        bytes.len() as u64,
        c.pos(),
        data_start,
        (unpadded, end),
        infos.is_empty(),
    )?;
    Ok(Parsed {
        version,
        kvs,
        tensors: infos,
        alignment,
        data_start,
    })
}

fn header(c: &mut Cursor<'_>) -> Result<u32> {
    let magic = c.array::<4>()?;
    if magic != MAGIC {
        return Err(malformed("gguf magic", format!("expected `GGUF`, found {magic:02x?}")).at(0));
    }
    let version = c.u32()?;
    if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
        return Err(malformed("gguf header", "big-endian GGUF is not supported").at(4));
    }
    if !(2..=3).contains(&version) {
        return Err(Error::new(ErrorKind::Version {
            format: "GGUF",
            version: version.into(),
        })
        .at(4));
    }
    Ok(version)
}

fn count(c: &mut Cursor<'_>, what: &'static str, cap: u64, min_each: u64) -> Result<u64> {
    let at = c.pos();
    let n = c.u64()?;
    if n > cap {
        return Err(Error::new(ErrorKind::TooLarge {
            what,
            value: n,
            cap,
        })
        .at(at));
    }
    if n.saturating_mul(min_each) > c.remaining() {
        let need = at.saturating_add(n.saturating_mul(min_each));
        return Err(Error::new(ErrorKind::Truncated {
            need,
            have: c.pos() + c.remaining(),
        })
        .at(at));
    }
    Ok(n)
}

fn read_kvs(c: &mut Cursor<'_>, n: u64) -> Result<Vec<(String, Value)>> {
    let mut seen = HashSet::new();
    let mut kvs = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let at = c.pos();
        let key = c.string("metadata key", GGUF_MAX_KEY)?;
        if key.is_empty() {
            return Err(malformed("metadata key", "empty key").at(at));
        }
        if !seen.insert(key.clone()) {
            return Err(Error::new(ErrorKind::Duplicate {
                what: "metadata key",
                name: key,
            })
            .at(at));
        }
        let value = read_value(c, &key).map_err(|e| e.at(at))?;
        kvs.push((key, value));
    }
    Ok(kvs)
}

fn value_type(c: &mut Cursor<'_>, key: &str) -> Result<ValueType> {
    let at = c.pos();
    let code = c.u32()?;
    ValueType::from_code(code).ok_or_else(|| {
        Error::new(ErrorKind::Metadata {
            key: key.into(),
            detail: format!("unknown value type {code}"),
        })
        .at(at)
    })
}

fn read_value(c: &mut Cursor<'_>, key: &str) -> Result<Value> {
    let t = value_type(c, key)?;
    if t != ValueType::Array {
        return read_scalar(c, t, key);
    }
    let at = c.pos();
    let elem = value_type(c, key)?;
    if elem == ValueType::Array {
        let detail = "nested arrays are not supported (gguf.cpp refuses them)".into();
        return Err(Error::new(ErrorKind::Metadata {
            key: key.into(),
            detail,
        })
        .at(at));
    }
    let n = count(c, "array length", GGUF_MAX_ARRAY, elem.min_size())?;
    let items = (0..n)
        .map(|_| read_scalar(c, elem, key))
        .collect::<Result<Vec<_>>>()?;
    Ok(Value::Array(elem, items))
}

fn read_scalar(c: &mut Cursor<'_>, t: ValueType, key: &str) -> Result<Value> {
    let at = c.pos();
    Ok(match t {
        ValueType::U8 => Value::U8(c.u8()?),
        ValueType::I8 => Value::I8(i8::from_le_bytes(c.array()?)),
        ValueType::U16 => Value::U16(c.u16()?),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.array()?)),
        ValueType::U32 => Value::U32(c.u32()?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.array()?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(c.array()?)),
        ValueType::U64 => Value::U64(c.u64()?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.array()?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(c.array()?)),
        ValueType::String => Value::String(c.string("metadata string", GGUF_MAX_STRING)?),
        ValueType::Bool => match c.u8()? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            b => {
                let detail = format!("bool byte {b} is neither 0 nor 1");
                return Err(Error::new(ErrorKind::Metadata {
                    key: key.into(),
                    detail,
                })
                .at(at));
            }
        },
        ValueType::Array => {
            return Err(malformed("gguf value", "array where a scalar belongs").at(at));
        }
    })
}

fn alignment(kvs: &[(String, Value)]) -> Result<u64> {
    let Some((_, v)) = kvs.iter().find(|(k, _)| k == ALIGNMENT_KEY) else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    match v {
        Value::U32(a) if a.is_power_of_two() => Ok((*a).into()),
        other => Err(Error::new(ErrorKind::Metadata {
            key: ALIGNMENT_KEY.into(),
            detail: format!("must be a u32 power of two, found {other:?}"),
        })),
    }
}

fn read_infos(c: &mut Cursor<'_>, n: u64) -> Result<Vec<GgufTensor>> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let at = c.pos();
        let info = read_info(c).map_err(|e| e.at(at))?;
        if !seen.insert(info.meta.name.clone()) {
            let name = info.meta.name;
            return Err(Error::new(ErrorKind::Duplicate {
                what: "tensor",
                name,
            })
            .at(at));
        }
        out.push(info);
    }
    Ok(out)
}

fn read_info(c: &mut Cursor<'_>) -> Result<GgufTensor> {
    let name = c.string("tensor name", GGML_MAX_NAME as u64 - 1)?;
    let n_dims = c.u32()?;
    if n_dims > GGML_MAX_DIMS {
        return Err(
            malformed("tensor info", format!("{n_dims} dimensions, at most 4")).in_tensor(name),
        );
    }
    let mut ne = (0..n_dims).map(|_| c.u64()).collect::<Result<Vec<_>>>()?;
    // gguf.cpp pads `ne` with 1s, so zero dimensions mean one element (and a writer can only
    // say it with one dimension of 1). Found by the `gguf` fuzz target's round-trip property.
    if ne.is_empty() {
        ne.push(1);
    }
    let id = c.u32()?;
    let offset = c.u64()?;
    tensor(name, ne, id, offset)
}

fn tensor(name: String, ne: Vec<u64>, id: u32, offset: u64) -> Result<GgufTensor> {
    let err = |kind: ErrorKind| Error::new(kind).in_tensor(name.clone());
    if let Some(&d) = ne.iter().find(|&&d| d > i64::MAX as u64) {
        return Err(err(ErrorKind::Layout(format!(
            "negative dimension {}",
            d as i64
        ))));
    }
    let dtype = dtype_of_ggml(id).ok_or_else(|| {
        let why = if is_removed(id) {
            " (removed from ggml; use Q4_0 with runtime repacking)"
        } else {
            ""
        };
        err(ErrorKind::UnsupportedDType(format!("ggml type {id}{why}")))
    })?;
    let shape = Shape::new(ne.iter().rev().copied().collect::<Vec<_>>());
    let meta = TensorMeta::new(name.clone(), dtype, shape);
    let row = ne.first().copied().unwrap_or(1);
    dtype.row_bytes(row).map_err(|e| err(e.into()))?;
    let nbytes = meta.nbytes().map_err(|e| err(e.into()))?;
    if nbytes > i64::MAX as u64 {
        return Err(err(ErrorKind::Layout(format!(
            "{nbytes} bytes overflows int64"
        ))));
    }
    Ok(GgufTensor {
        meta,
        ggml_type: id,
        offset,
        nbytes,
    })
}

/// `x` rounded up to `align` (a power of two), or `None` on overflow.
pub(super) fn pad(x: u64, align: u64) -> Option<u64> {
    x.checked_add(align - 1).map(|v| v & !(align - 1))
}

fn check_offsets(infos: &[GgufTensor], align: u64, data_start: u64) -> Result<u64> {
    let mut expected = 0u64;
    for t in infos {
        if t.offset != expected {
            return Err(Error::new(ErrorKind::Layout(format!(
                "offset {} where the running padded size is {expected}",
                t.offset
            )))
            .in_tensor(&t.meta.name));
        }
        expected = expected
            .checked_add(t.nbytes)
            .and_then(|e| pad(e, align))
            .filter(|e| e.checked_add(data_start).is_some())
            .ok_or_else(|| {
                Error::new(ErrorKind::Layout("data size overflows".into())).in_tensor(&t.meta.name)
            })?;
    }
    Ok(expected)
}

/// The file ends after the last tensor's padding, or (as some writers leave it) right after
/// the last tensor's bytes; anything shorter is truncated and anything longer is refused.
fn check_length(
    len: u64,
    infos_end: u64,
    data_start: u64,
    ends: (u64, u64),
    empty: bool,
) -> Result<()> {
    if empty && (len == infos_end || len == data_start) {
        return Ok(());
    }
    let (unpadded, end) = (data_start + ends.0, data_start + ends.1);
    if len == unpadded {
        return Ok(());
    }
    if len < end {
        return Err(Error::new(ErrorKind::Truncated {
            need: end,
            have: len,
        })
        .at(len));
    }
    if len > end {
        return Err(Error::new(ErrorKind::TrailingBytes { extra: len - end }).at(end));
    }
    Ok(())
}
