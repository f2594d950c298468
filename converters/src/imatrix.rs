//! Importance matrices as `llama-imatrix` writes them, normalised as `llama-quantize` reads them.
//!
//! Two formats (llama.cpp `common/imatrix-loader.cpp`):
//! - GGUF: per weight `<name>.in_sum2` (F32, `n_per_row * n_expert` sums of squared
//!   activations) and `<name>.counts` (F32, one token count per expert), with the metadata keys
//!   `imatrix.datasets`, `imatrix.chunk_count` and `imatrix.chunk_size`.
//! - legacy `.dat`: `i32 n_entries`, then per entry `i32 len, name, i32 ncall, i32 nval,
//!   f32[nval]`, then optionally `i32 chunk_count, i32 len, dataset`.
//!
//! The values handed out are what `load_imatrix` in `tools/quantize/quantize.cpp` computes: GGUF
//! sums divided by their expert's count (rounded to an integer first; a count of 0 gives 1.0 for
//! the whole slice), legacy sums divided by `ncall` when it is positive. Where llama.cpp would
//! read past a buffer, divide by zero or silently keep the last of two entries, this reader
//! refuses the file instead, naming the file and the entry.

use std::collections::BTreeMap;
use std::path::Path;

use wharf_core::{DType, TensorSource};

use crate::error::{Error, ErrorKind, Result};
use crate::gguf::{GgufFile, MAGIC, Value};
use crate::mmap::Mapped;

const SUMS: &str = ".in_sum2";
const COUNTS: &str = ".counts";

/// A loaded importance matrix: one normalised vector per weight name.
#[derive(Debug, Clone, PartialEq)]
pub struct Imatrix {
    /// Weight name (a GGUF tensor name) → `n_per_row * n_expert` importances.
    pub entries: BTreeMap<String, Vec<f32>>,
    /// `imatrix.datasets` (GGUF) or the trailing dataset name (legacy).
    pub datasets: Vec<String>,
    /// `imatrix.chunk_count`, or the legacy trailing call count (0 when absent).
    pub chunk_count: u32,
    /// Whether the file was in the legacy `.dat` format.
    pub legacy: bool,
}

fn malformed(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::Malformed {
        what: "imatrix",
        detail: detail.into(),
    })
}

impl Imatrix {
    /// Reads `path`: GGUF when it starts with the GGUF magic, the legacy format otherwise.
    pub fn load(path: impl AsRef<Path>) -> Result<Imatrix> {
        let path = path.as_ref();
        let map = Mapped::open(path)?;
        let loaded = if map.bytes().starts_with(&MAGIC) {
            drop(map);
            from_gguf(&GgufFile::open(path)?)
        } else {
            from_legacy(map.bytes())
        };
        let m = loaded.map_err(|e| e.in_file(path))?;
        for (name, values) in &m.entries {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(malformed(format!("non-finite importance at index {i}"))
                    .in_tensor(name)
                    .in_file(path));
            }
        }
        Ok(m)
    }
}

/// One weight's raw statistics, as `llama-imatrix` collects them.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEntry {
    /// The GGUF tensor name the statistics belong to.
    pub name: String,
    /// `n_per_row * n_expert` sums of squared activations, expert after expert.
    pub sums: Vec<f32>,
    /// Tokens seen per expert (one value for a dense weight).
    pub counts: Vec<f32>,
}

/// Writes `entries` as `llama-imatrix` does (`tools/imatrix/imatrix.cpp`, `save_imatrix`):
/// `general.type`, the three `imatrix.*` keys, then per entry `<name>.in_sum2`
/// (`[n_expert, n_per_row]`) and `<name>.counts` (`[n_expert, 1]`), all F32.
pub fn write_gguf(
    path: &Path,
    entries: &[RawEntry],
    datasets: &[&str],
    chunk_count: u32,
    chunk_size: u32,
) -> Result<()> {
    use wharf_core::{TensorMeta, TensorSink};
    let kvs = vec![
        ("general.type".to_owned(), Value::String("imatrix".into())),
        (
            "imatrix.datasets".to_owned(),
            Value::strings(datasets.iter().copied()),
        ),
        ("imatrix.chunk_count".to_owned(), Value::U32(chunk_count)),
        ("imatrix.chunk_size".to_owned(), Value::U32(chunk_size)),
    ];
    let mut metas = Vec::new();
    for e in entries {
        let n = e.counts.len() as u64;
        if n == 0 || !(e.sums.len() as u64).is_multiple_of(n) {
            return Err(malformed("sums are not whole slices for the counts").in_tensor(&e.name));
        }
        let ne0 = e.sums.len() as u64 / n;
        metas.push(TensorMeta::new(
            format!("{}{SUMS}", e.name),
            DType::F32,
            [n, ne0],
        ));
        metas.push(TensorMeta::new(
            format!("{}{COUNTS}", e.name),
            DType::F32,
            [n, 1],
        ));
    }
    let mut w = crate::gguf::GgufWriter::create(path, &kvs, &metas, None)?;
    for (e, pair) in entries.iter().zip(metas.chunks(2)) {
        for (meta, values) in pair.iter().zip([&e.sums, &e.counts]) {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            w.write(&meta.name, &bytes).map_err(crate::from_core)?;
        }
    }
    w.commit()
}

fn from_gguf(g: &GgufFile) -> Result<Imatrix> {
    let mut pairs: BTreeMap<&str, (Option<&str>, Option<&str>)> = BTreeMap::new();
    for m in g.tensors() {
        if let Some(base) = m.name.strip_suffix(SUMS).filter(|b| !b.is_empty()) {
            pairs.entry(base).or_default().0 = Some(&m.name);
        } else if let Some(base) = m.name.strip_suffix(COUNTS).filter(|b| !b.is_empty()) {
            pairs.entry(base).or_default().1 = Some(&m.name);
        }
    }
    if g.tensors().is_empty() {
        return Err(malformed("no tensors"));
    }
    let datasets_value = g.get("imatrix.datasets");
    let (Some(_), Some(chunks), Some(size)) = (
        datasets_value,
        g.get("imatrix.chunk_count"),
        g.get("imatrix.chunk_size"),
    ) else {
        return Err(malformed(
            "missing imatrix metadata (imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size)",
        ));
    };
    let u32_key = |key: &str, v: &Value| match v {
        Value::U32(n) => Ok(*n),
        other => Err(Error::new(ErrorKind::Metadata {
            key: key.into(),
            detail: format!("must be u32, found {:?}", other.value_type()),
        })),
    };
    let chunk_count = u32_key("imatrix.chunk_count", chunks)?;
    u32_key("imatrix.chunk_size", size)?;
    // Like llama.cpp, a datasets key of another type is kept for `has_metadata` but not read.
    let datasets = match datasets_value {
        Some(Value::Array(_, items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let mut entries = BTreeMap::new();
    for (base, pair) in pairs {
        let (Some(sums), Some(counts)) = pair else {
            return Err(malformed("mismatched sums and counts").in_tensor(base));
        };
        let values = entry(g, sums, counts).map_err(|e| e.in_tensor(base))?;
        entries.insert(base.to_owned(), values);
    }
    Ok(Imatrix {
        entries,
        datasets,
        chunk_count,
        legacy: false,
    })
}

fn f32s(g: &GgufFile, name: &str) -> Result<Vec<f32>> {
    let meta = g.require(name).map_err(crate::from_core)?;
    if meta.dtype != DType::F32 {
        return Err(malformed(format!(
            "`{name}` is {}, sums and counts must be F32",
            meta.dtype
        )));
    }
    let bytes = g.bytes(name).map_err(crate::from_core)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// `sums[j*ne0 + i] / round(counts[j])`, 1.0 for an expert with no tokens.
fn entry(g: &GgufFile, sums: &str, counts: &str) -> Result<Vec<f32>> {
    let mut values = f32s(g, sums)?;
    let counts = f32s(g, counts)?;
    if counts.is_empty() || values.is_empty() || !values.len().is_multiple_of(counts.len()) {
        return Err(malformed(format!(
            "{} sums are not whole slices for {} counts",
            values.len(),
            counts.len()
        )));
    }
    let ne0 = values.len() / counts.len();
    for (slice, &c) in values.chunks_mut(ne0).zip(&counts) {
        if !c.is_finite() {
            return Err(malformed(format!("non-finite count {c}")));
        }
        // `std::lround` (half away from zero) to int64, then back to float.
        let count = c.round() as i64 as f32;
        if count > 0.0 {
            slice.iter_mut().for_each(|v| *v /= count);
        } else {
            slice.fill(1.0);
        }
    }
    Ok(values)
}

/// A bounds-checked little-endian reader over the legacy file.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            let have = (self.bytes.len() - self.pos) as u64;
            return Err(Error::new(ErrorKind::Truncated {
                need: n as u64,
                have,
            })
            .at(self.pos as u64));
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length that must be positive (or zero when `allow_zero`) and fit the bytes left.
    fn len(&mut self, what: &str, elem: usize, allow_zero: bool) -> Result<usize> {
        let at = self.pos as u64;
        let n = self.i32()?;
        let left = self.bytes.len() - self.pos;
        let ok = n > 0 || (allow_zero && n == 0);
        match usize::try_from(n) {
            Ok(n) if ok && n.checked_mul(elem).is_some_and(|b| b <= left) => Ok(n),
            _ => Err(malformed(format!("{what} {n} does not fit the {left} bytes left")).at(at)),
        }
    }

    fn string(&mut self, n: usize) -> Result<String> {
        let at = self.pos as u64;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| malformed("name is not UTF-8").at(at))
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

fn legacy_entry(r: &mut Reader<'_>) -> Result<Vec<f32>> {
    let ncall = r.i32()?;
    let nval = r.len("value count", 4, false)?;
    let sums = r
        .take(nval * 4)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    // Legacy sums hold (raw/count)*ncall; llama-quantize divides by ncall when it is positive.
    Ok(if ncall > 0 {
        sums.map(|v| v / ncall as f32).collect()
    } else {
        sums.collect()
    })
}

fn from_legacy(bytes: &[u8]) -> Result<Imatrix> {
    let mut r = Reader { bytes, pos: 0 };
    // Each entry takes at least 16 bytes (three i32 and one value), which bounds the count.
    let n_entries = r.len("entry count", 16, false)?;
    let mut entries = BTreeMap::new();
    for i in 0..n_entries {
        let name_len = r.len("name length", 1, false)?;
        let name = r
            .string(name_len)
            .map_err(|e| e.in_tensor(format!("#{i}")))?;
        let values = legacy_entry(&mut r).map_err(|e| e.in_tensor(&name))?;
        if entries.insert(name.clone(), values).is_some() {
            return Err(Error::new(ErrorKind::Duplicate {
                what: "imatrix entry",
                name,
            }));
        }
    }
    let (mut chunk_count, mut datasets) = (0, Vec::new());
    if r.left() > 0 {
        let at = r.pos as u64;
        let n = r.i32()?;
        chunk_count = u32::try_from(n).map_err(|_| malformed(format!("chunk count {n}")).at(at))?;
        if r.left() > 0 {
            let len = r.len("dataset length", 1, true)?;
            if len > 0 {
                datasets.push(r.string(len)?);
            }
        }
    }
    if r.left() > 0 {
        let extra = r.left() as u64;
        return Err(Error::new(ErrorKind::TrailingBytes { extra }).at(r.pos as u64));
    }
    Ok(Imatrix {
        entries,
        datasets,
        chunk_count,
        legacy: true,
    })
}

#[cfg(test)]
#[path = "imatrix_tests.rs"]
mod tests;
