//! ONNX `TensorProto` (onnx `onnx/onnx.proto`): dims, data type, name, and the bytes in one of
//! `raw_data`, a typed `*_data` field, or an external file. Every payload is checked against
//! `numel × element size` before anything is copied (RELIABILITY.md O3, O4).

use wharf_core::{DType, TensorMeta};

use super::proto::{Fields, Wire, count_varints, varints};
use crate::error::{Error, ErrorKind, Result, malformed};

/// Where an initializer's bytes are.
#[derive(Debug, Clone)]
pub enum Data {
    /// `raw_data`: little-endian bytes at this range of the model file.
    Raw(usize, usize),
    /// A typed repeated field (`float_data` = 4, `int32_data` = 5, `int64_data` = 7,
    /// `double_data` = 10, `uint64_data` = 11), packed ranges or single values.
    Typed(u32, Vec<Wire>),
    /// `data_location: EXTERNAL`: `length` bytes at `offset` of `location`.
    External {
        /// Path relative to the model's folder.
        location: String,
        /// Byte offset.
        offset: u64,
        /// Byte length.
        length: u64,
    },
}

/// One initializer.
#[derive(Debug, Clone)]
pub struct Initializer {
    /// Name (kept as the model spells it), dtype, shape.
    pub meta: TensorMeta,
    /// The payload.
    pub data: Data,
}

/// ONNX `TensorProto.DataType` → ours. Types with no storage of ours (STRING, COMPLEX*, the
/// FNUZ float8s) are refused by name.
pub fn dtype(code: u64) -> Result<DType> {
    Ok(match code {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        4 => DType::U16,
        5 => DType::I16,
        6 => DType::I32,
        7 => DType::I64,
        9 => DType::Bool,
        10 => DType::F16,
        11 => DType::F64,
        12 => DType::U32,
        13 => DType::U64,
        16 => DType::BF16,
        17 => DType::F8E4M3,
        19 => DType::F8E5M2,
        21 => DType::U4,
        22 => DType::I4,
        23 => DType::F4E2M1,
        24 => DType::F8E8M0,
        other => {
            let name = match other {
                8 => "STRING",
                14 | 15 => "COMPLEX",
                18 | 20 => "FLOAT8 FNUZ",
                _ => "unknown",
            };
            return Err(Error::new(ErrorKind::UnsupportedDType(format!(
                "ONNX data_type {other} ({name})"
            ))));
        }
    })
}

/// Which typed field holds `d` (onnx.proto's comments on each `*_data` field).
fn typed_field(d: DType) -> u32 {
    match d {
        DType::F32 => 4,
        DType::I64 => 7,
        DType::F64 => 10,
        DType::U32 | DType::U64 => 11,
        _ => 5,
    }
}

/// Parses the TensorProto in `buf[start..end]`.
pub fn parse(buf: &[u8], start: usize, end: usize) -> Result<Initializer> {
    let mut f = Fields::new(buf, start, end);
    let (mut dims, mut code, mut name) = (Vec::new(), None, None);
    let (mut raw, mut typed, mut external, mut location) = (None, Vec::new(), Vec::new(), 0);
    while let Some((field, wire)) = f.next_field()? {
        match (field, wire) {
            (1, Wire::Varint(v)) => dims.push(dim(v)?),
            (1, Wire::Bytes(a, b)) => {
                for v in varints(buf, a, b)? {
                    dims.push(dim(v)?);
                }
            }
            (2, Wire::Varint(v)) => code = Some(v),
            (8, Wire::Bytes(a, b)) => name = Some(utf8(buf, a, b, "tensor name")?),
            (9, Wire::Bytes(a, b)) => raw = Some((a, b)),
            (13, Wire::Bytes(a, b)) => external.push(key_value(buf, a, b)?),
            (14, Wire::Varint(v)) => location = v,
            (4 | 5 | 7 | 10 | 11, w) => typed.push((field, w)),
            (3 | 6, _) => return Err(malformed("onnx", "segmented or string tensors")),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| malformed("onnx", "initializer without a name"))?;
    let dtype = dtype(code.unwrap_or(0)).map_err(|e| e.in_tensor(&name))?;
    let meta = TensorMeta::new(name.clone(), dtype, dims);
    let nbytes = meta.nbytes().map_err(|e| Error::from(e).in_tensor(&name))?;
    let data = match (raw, typed.is_empty(), location) {
        (Some((a, b)), true, 0) => {
            expect_len((b - a) as u64, nbytes)?;
            Data::Raw(a, b)
        }
        (None, false, 0) => typed_data(buf, &meta, nbytes, typed)?,
        (None, true, 1) => external_data(external, nbytes)?,
        (None, true, 0) if nbytes == 0 => Data::Raw(start, start),
        _ => {
            return Err(malformed(
                "onnx",
                "initializer needs exactly one of raw_data, a typed field, or external data",
            )
            .in_tensor(&name));
        }
    };
    Ok(Initializer { meta, data })
}

fn dim(v: u64) -> Result<u64> {
    // int64 on the wire: a negative dimension arrives as a value with the top bit set (O4).
    if v > i64::MAX as u64 {
        return Err(malformed("onnx", "negative dimension"));
    }
    Ok(v)
}

fn utf8(buf: &[u8], a: usize, b: usize, what: &str) -> Result<String> {
    let bytes = buf.get(a..b).unwrap_or_default();
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| malformed("onnx", format!("{what} is not UTF-8")))
}

fn expect_len(have: u64, need: u64) -> Result<()> {
    if have != need {
        return Err(Error::new(ErrorKind::Layout(format!(
            "payload holds {have} bytes, shape and dtype need {need}"
        ))));
    }
    Ok(())
}

/// `StringStringEntryProto { key = 1; value = 2; }`.
fn key_value(buf: &[u8], a: usize, b: usize) -> Result<(String, String)> {
    let mut f = Fields::new(buf, a, b);
    let (mut k, mut v) = (String::new(), String::new());
    while let Some((field, wire)) = f.next_field()? {
        match (field, wire) {
            (1, Wire::Bytes(a, b)) => k = utf8(buf, a, b, "external_data key")?,
            (2, Wire::Bytes(a, b)) => v = utf8(buf, a, b, "external_data value")?,
            _ => {}
        }
    }
    Ok((k, v))
}

/// `location`, `offset`, `length` (and `checksum`, ignored); any other key is refused so
/// nothing can be injected into fields (O6).
fn external_data(entries: Vec<(String, String)>, nbytes: u64) -> Result<Data> {
    let (mut location, mut offset, mut length) = (None, 0u64, None);
    for (k, v) in entries {
        let number = || {
            v.parse::<u64>()
                .map_err(|_| malformed("onnx", format!("external_data {k} `{v}` is not a number")))
        };
        match k.as_str() {
            "location" if location.is_none() => location = Some(v.clone()),
            "offset" => offset = number()?,
            "length" => length = Some(number()?),
            "checksum" => {}
            _ => {
                return Err(Error::new(ErrorKind::Unsafe {
                    what: format!("external_data key `{k}`"),
                }));
            }
        }
    }
    let location = location.ok_or_else(|| malformed("onnx", "external data without location"))?;
    let length = length.unwrap_or(nbytes);
    expect_len(length, nbytes)?;
    Ok(Data::External {
        location,
        offset,
        length,
    })
}

/// Checks the element count of a typed field against the shape.
fn typed_data(buf: &[u8], meta: &TensorMeta, nbytes: u64, typed: Vec<(u32, Wire)>) -> Result<Data> {
    let field = typed_field(meta.dtype);
    let mut count = 0u64;
    let mut wires = Vec::with_capacity(typed.len());
    for (f, w) in typed {
        if f != field {
            return Err(malformed(
                "onnx",
                format!("{} stored in typed field {f}", meta.dtype),
            ));
        }
        count = count.saturating_add(match (f, w) {
            (4, Wire::Bytes(a, b)) => fixed_count(a, b, 4)?,
            (10, Wire::Bytes(a, b)) => fixed_count(a, b, 8)?,
            (_, Wire::Bytes(a, b)) => count_varints(buf, a, b)?,
            (4, Wire::Fixed32(_)) | (10, Wire::Fixed64(_)) | (5 | 7 | 11, Wire::Varint(_)) => 1,
            _ => return Err(malformed("onnx", "typed field of the wrong wire type")),
        });
        wires.push(w);
    }
    let esize = meta.dtype.nbytes(1).unwrap_or(1).max(1);
    let need = nbytes / esize;
    if count != need {
        return Err(Error::new(ErrorKind::Layout(format!(
            "typed field holds {count} values, shape needs {need}"
        ))));
    }
    Ok(Data::Typed(field, wires))
}

fn fixed_count(a: usize, b: usize, size: u64) -> Result<u64> {
    let n = (b - a) as u64;
    if !n.is_multiple_of(size) {
        return Err(malformed(
            "onnx",
            "packed fixed-size field of partial length",
        ));
    }
    Ok(n / size)
}

/// The little-endian bytes of a typed field, `esize` bytes per value.
pub fn decode(buf: &[u8], field: u32, wires: &[Wire], esize: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let push = |out: &mut Vec<u8>, v: u64| out.extend(v.to_le_bytes().iter().take(esize));
    for w in wires {
        match (field, *w) {
            (4 | 10, Wire::Bytes(a, b)) => {
                out.extend_from_slice(buf.get(a..b).unwrap_or_default());
            }
            (_, Wire::Bytes(a, b)) => {
                for v in varints(buf, a, b)? {
                    push(&mut out, v);
                }
            }
            (_, Wire::Varint(v) | Wire::Fixed64(v)) => push(&mut out, v),
            (_, Wire::Fixed32(v)) => push(&mut out, u64::from(v)),
        }
    }
    Ok(out)
}
