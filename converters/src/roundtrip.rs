//! Properties every untrusted-input parser must keep, as plain functions: the fuzz targets
//! (`fuzz/`) and the stable replay test (`tests/fuzz_corpus.rs`) call the same code.
//!
//! Each check parses arbitrary bytes. Rejection is fine (a typed error is the expected answer
//! to most inputs); a panic is a bug; and when the bytes *are* accepted, writing what was read
//! and parsing that again must give the same thing (ripgrep's `fuzz_glob.rs` pattern).

use wharf_core::TensorMeta;

use crate::gguf::{Value, header_bytes as gguf_header};
use crate::safetensors::header_bytes as st_header;

/// What a check concluded about one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted, and it round-trips.
    Accepted,
    /// Refused with a typed error.
    Rejected(String),
}

/// A property violation: the input was accepted but did not survive write → parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

/// A safetensors file: header parse, then header re-written from what was read, parsed again.
pub fn safetensors(bytes: &[u8]) -> Result<Outcome, Violation> {
    let h = match crate::safetensors::header::parse(bytes) {
        Ok(h) => h,
        Err(e) => return Ok(Outcome::Rejected(e.to_string())),
    };
    let metas: Vec<TensorMeta> = h.entries.iter().map(|e| e.meta.clone()).collect();
    let data = h.entries.iter().map(|e| e.range.1).max().unwrap_or(0);
    let mut again = st_header(&metas, &h.metadata)
        .map_err(|e| Violation(format!("accepted header does not re-write: {e}")))?;
    again.resize(again.len() + usize::try_from(data).unwrap_or(0), 0);
    let h2 = crate::safetensors::header::parse(&again)
        .map_err(|e| Violation(format!("re-written header refused: {e}")))?;
    let metas2: Vec<TensorMeta> = h2.entries.iter().map(|e| e.meta.clone()).collect();
    if metas2 != metas || h2.metadata != h.metadata {
        return Err(Violation("re-written header reads differently".into()));
    }
    Ok(Outcome::Accepted)
}

/// A GGUF file: parse, re-write header + zeroed data from what was read, parse again.
pub fn gguf(bytes: &[u8]) -> Result<Outcome, Violation> {
    let p = match crate::gguf::read::parse(bytes) {
        Ok(p) => p,
        Err(e) => return Ok(Outcome::Rejected(e.to_string())),
    };
    let metas: Vec<TensorMeta> = p.tensors.iter().map(|t| t.meta.clone()).collect();
    let (mut again, align) = gguf_header(&p.kvs, &metas)
        .map_err(|e| Violation(format!("accepted GGUF does not re-write: {e}")))?;
    for t in &p.tensors {
        let padded = t.nbytes.div_ceil(align.max(1)) * align.max(1);
        again.resize(again.len() + usize::try_from(padded).unwrap_or(0), 0);
    }
    let p2 = crate::gguf::read::parse(&again)
        .map_err(|e| Violation(format!("re-written GGUF refused: {e}")))?;
    let metas2: Vec<TensorMeta> = p2.tensors.iter().map(|t| t.meta.clone()).collect();
    if metas2 != metas || !same_kvs(&p.kvs, &p2.kvs) {
        return Err(Violation("re-written GGUF reads differently".into()));
    }
    Ok(Outcome::Accepted)
}

fn same_kvs(a: &[(String, Value)], b: &[(String, Value)]) -> bool {
    // Float NaNs compare unequal; compare their bit patterns through the debug form instead.
    format!("{a:?}") == format!("{b:?}")
}

/// A `model.safetensors.index.json`: strict JSON, then the index rules.
pub fn shard_index(bytes: &[u8]) -> Result<Outcome, Violation> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(Outcome::Rejected("not UTF-8".into()));
    };
    let parsed = crate::json::parse_strict(text)
        .and_then(|v| crate::safetensors::index::ShardIndex::parse(&v));
    Ok(match parsed {
        Ok(_) => Outcome::Accepted,
        Err(e) => Outcome::Rejected(e.to_string()),
    })
}

/// A `torch.save` zip: zip directory, data-only pickle, every tensor view against its record.
/// Nothing is written back (wharf does not write pickles); the property is a typed answer in
/// bounded time and memory.
pub fn torch(bytes: &[u8]) -> Result<Outcome, Violation> {
    Ok(match crate::torch::parse(bytes) {
        Ok(_) => Outcome::Accepted,
        Err(e) => Outcome::Rejected(e.to_string()),
    })
}

/// A bare pickle stream through the data-only pickle machine.
pub fn pickle(bytes: &[u8]) -> Result<Outcome, Violation> {
    Ok(match crate::torch::unpickle(bytes) {
        Ok(_) => Outcome::Accepted,
        Err(e) => Outcome::Rejected(e.to_string()),
    })
}

/// An ONNX model's initializers (inline payloads only: external files are never opened here).
pub fn onnx(bytes: &[u8]) -> Result<Outcome, Violation> {
    let inits = match crate::onnx::initializers(bytes) {
        Ok(i) => i,
        Err(e) => return Ok(Outcome::Rejected(e.to_string())),
    };
    for t in &inits {
        if t.meta.nbytes().is_err() {
            return Err(Violation(format!(
                "initializer `{}` accepted with an unrepresentable size",
                t.meta.name
            )));
        }
    }
    Ok(Outcome::Accepted)
}
