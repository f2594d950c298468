//! The safetensors header: `u64` length, JSON object, then the data buffer.
//! Spec: <https://github.com/huggingface/safetensors#format>.
//!
//! Parsed with serde into our own structures so that duplicate names (TOB-SFTN-7) and unknown
//! dtypes are typed errors, sizes are `u64` on every host, and header order is kept.
//! Validation: exact coverage of the data buffer by contiguous, non-overlapping regions whose
//! sizes equal `numel x dtype` (RELIABILITY.md S1-S16).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use wharf_core::{DType, Shape, TensorMeta};

use crate::error::{Error, ErrorKind, Result, malformed};
use crate::limits::{MAX_TENSORS, SAFETENSORS_MAX_HEADER};

/// One tensor's entry as the header states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Name, dtype and shape.
    pub meta: TensorMeta,
    /// Start and end of its bytes, relative to the data buffer.
    pub range: (u64, u64),
}

/// A parsed and validated header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Length of the JSON text.
    pub json_len: u64,
    /// `__metadata__`, string to string.
    pub metadata: BTreeMap<String, String>,
    /// Tensors in data-offset order.
    pub entries: Vec<Entry>,
}

impl Header {
    /// Offset of the data buffer in the file.
    pub fn data_start(&self) -> u64 {
        8 + self.json_len
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

enum RawItem {
    Metadata(BTreeMap<String, String>),
    Tensor(String, RawInfo),
}

/// serde errors are strings; this prefix (which no JSON text can produce, since the key came
/// through a valid string) lets `json_error` turn a duplicate back into a typed error.
const DUPLICATE_MARK: &str = "\u{0}duplicate\u{0}";

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = (Option<BTreeMap<String, String>>, Vec<(String, RawInfo)>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of tensor entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        let mut metadata = None;
        let mut tensors = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!("{DUPLICATE_MARK}{key}")));
            }
            if tensors.len() as u64 >= MAX_TENSORS {
                return Err(de::Error::custom("more tensors than the limit"));
            }
            let item = if key == "__metadata__" {
                RawItem::Metadata(map.next_value()?)
            } else {
                let info: RawInfo = map.next_value()?;
                RawItem::Tensor(key, info)
            };
            match item {
                RawItem::Metadata(m) => metadata = Some(m),
                RawItem::Tensor(k, i) => tensors.push((k, i)),
            }
        }
        Ok((metadata, tensors))
    }
}

struct RawHeader(Option<BTreeMap<String, String>>, Vec<(String, RawInfo)>);

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (m, t) = d.deserialize_map(HeaderVisitor)?;
        Ok(RawHeader(m, t))
    }
}

/// Maps a safetensors dtype string to ours; unknown or unsupported spellings are refused.
pub fn dtype_from_str(s: &str) -> Option<DType> {
    use DType::*;
    Some(match s {
        "BOOL" => Bool,
        "U8" => U8,
        "I8" => I8,
        "U16" => U16,
        "I16" => I16,
        "U32" => U32,
        "I32" => I32,
        "U64" => U64,
        "I64" => I64,
        "F16" => F16,
        "BF16" => BF16,
        "F32" => F32,
        "F64" => F64,
        "F8_E4M3" => F8E4M3,
        "F8_E5M2" => F8E5M2,
        "F8_E8M0" => F8E8M0,
        "F4" => F4E2M1,
        _ => return None,
    })
}

/// Whether a dtype can be stored in safetensors (the inverse of [`dtype_from_str`]).
pub fn dtype_to_str(d: DType) -> Option<&'static str> {
    let name = d.name();
    dtype_from_str(name).map(|_| name)
}

/// Reads the 8-byte length and the JSON text from the start of `bytes` (a whole file) and
/// validates every entry against `bytes.len()`.
pub fn parse(bytes: &[u8]) -> Result<Header> {
    let file_len = bytes.len() as u64;
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            Error::new(ErrorKind::Truncated {
                need: 8,
                have: file_len,
            })
        })?;
    let json_len = u64::from_le_bytes(len_bytes);
    if json_len > SAFETENSORS_MAX_HEADER {
        return Err(Error::new(ErrorKind::TooLarge {
            what: "header length",
            value: json_len,
            cap: SAFETENSORS_MAX_HEADER,
        })
        .at(0));
    }
    let end = 8 + json_len;
    if end > file_len {
        return Err(Error::new(ErrorKind::Truncated {
            need: end,
            have: file_len,
        })
        .at(0));
    }
    // `end <= file_len` and the cap make these conversions exact.
    let json = bytes.get(8..end as usize).unwrap_or_default();
    let text = std::str::from_utf8(json).map_err(|e| {
        malformed("header", format!("invalid UTF-8: {e}")).at(8 + e.valid_up_to() as u64)
    })?;
    if !text.trim_start().starts_with('{') {
        return Err(malformed("header", "not a JSON object").at(8));
    }
    let RawHeader(metadata, raw) = serde_json::from_str(text).map_err(|e| json_error(e, text))?;
    let entries = validate(raw, file_len - end)?;
    Ok(Header {
        json_len,
        metadata: metadata.unwrap_or_default(),
        entries,
    })
}

fn json_error(e: serde_json::Error, text: &str) -> Error {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix(DUPLICATE_MARK) {
        let name = rest.split(" at line").next().unwrap_or(rest).to_owned();
        return Error::new(ErrorKind::Duplicate {
            what: "tensor",
            name,
        });
    }
    // Byte offset of the error in the file: 8 + offset of the line/column in the text.
    let offset = text
        .split_inclusive('\n')
        .take(e.line().saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + e.column().saturating_sub(1);
    malformed("header", msg).at(8 + offset as u64)
}

fn validate(raw: Vec<(String, RawInfo)>, data_len: u64) -> Result<Vec<Entry>> {
    let mut entries = Vec::with_capacity(raw.len());
    for (name, info) in raw {
        let dtype = dtype_from_str(&info.dtype).ok_or_else(|| {
            Error::new(ErrorKind::UnsupportedDType(info.dtype.clone())).in_tensor(&name)
        })?;
        let meta = TensorMeta::new(name, dtype, Shape(info.shape));
        let size = meta
            .nbytes()
            .map_err(|e| Error::from(e).in_tensor(&meta.name))?;
        let (start, stop) = info.data_offsets;
        if stop >= start && stop > data_len {
            // Sizes relative to the data buffer; the caller knows where that starts.
            return Err(Error::new(ErrorKind::Truncated {
                need: stop,
                have: data_len,
            })
            .in_tensor(&meta.name));
        }
        if stop < start {
            return Err(Error::new(ErrorKind::Layout(format!(
                "data_offsets [{start}, {stop}] outside the {data_len}-byte data buffer"
            )))
            .in_tensor(&meta.name));
        }
        if stop - start != size {
            return Err(Error::new(ErrorKind::Layout(format!(
                "{} x {} needs {size} bytes, data_offsets give {}",
                meta.shape,
                meta.dtype,
                stop - start
            )))
            .in_tensor(&meta.name));
        }
        entries.push(Entry {
            meta,
            range: (start, stop),
        });
    }
    // Regions sorted by start must tile the buffer exactly: no hole, no overlap, no tail.
    entries.sort_by_key(|e| e.range);
    let mut pos = 0u64;
    for e in &entries {
        if e.range.0 != pos {
            let what = if e.range.0 < pos {
                "overlaps the previous tensor"
            } else {
                "leaves a hole"
            };
            return Err(Error::new(ErrorKind::Layout(format!(
                "region [{}, {}] {what} (expected start {pos})",
                e.range.0, e.range.1
            )))
            .in_tensor(&e.meta.name));
        }
        pos = e.range.1;
    }
    if pos != data_len {
        return Err(Error::new(ErrorKind::TrailingBytes {
            extra: data_len - pos,
        }));
    }
    Ok(entries)
}
