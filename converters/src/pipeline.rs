//! Streaming tensor copy: one output tensor at a time goes from a source to a sink, either as
//! raw bytes (same storage) or decoded to f32, transformed and re-encoded.
//!
//! Peak memory is one output tensor (plus its f32 form when it is transformed), never the model.

use std::borrow::Cow;

use wharf_core::cast::{decode_f32, encode_f32};
use wharf_core::{DType, TensorMeta, TensorSink, TensorSource};

use crate::error::{Error, ErrorKind, Result, from_core};

/// A transformation applied to the f32 values of a tensor (row-major, outer-first shape).
pub type Transform = Box<dyn Fn(&[f32]) -> Vec<f32> + Send + Sync>;

/// How one output tensor is made.
pub struct Planned {
    /// The output tensor.
    pub meta: TensorMeta,
    /// Source tensors, concatenated in order (one for most tensors; experts for stacks).
    pub from: Vec<String>,
    /// Applied to the concatenated f32 values; `None` keeps values as they are.
    pub transform: Option<Transform>,
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planned")
            .field("meta", &self.meta)
            .field("from", &self.from)
            .finish()
    }
}

impl Planned {
    /// `name` copied (or cast to `dtype`) under a new name and shape.
    pub fn simple(meta: TensorMeta, from: impl Into<String>) -> Self {
        Planned {
            meta,
            from: vec![from.into()],
            transform: None,
        }
    }
}

/// Encodes f32 values into a storage the core casts do not cover (GGML blocks, FP8 ...):
/// `(output tensor, values, output bytes)`.
pub type Encoder<'a> =
    &'a (dyn Fn(&TensorMeta, &[f32], &mut [u8]) -> std::result::Result<(), String> + Sync);

/// Bytes written per sink call when copying raw storage.
const CHUNK: usize = 8 << 20;

/// Writes every planned tensor into `sink`, calling `progress(i)` after each.
pub fn run(
    src: &dyn TensorSource,
    plan: &[Planned],
    sink: &mut dyn TensorSink,
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    run_with(src, plan, sink, progress, None)
}

/// [`run`] with an encoder for output storages beyond F32/F16/BF16.
pub fn run_with(
    src: &dyn TensorSource,
    plan: &[Planned],
    sink: &mut dyn TensorSink,
    progress: &mut dyn FnMut(usize),
    encoder: Option<Encoder<'_>>,
) -> Result<()> {
    let mut last = None;
    for (i, p) in plan.iter().enumerate() {
        write_one(src, p, sink, encoder, &mut last).map_err(|e| e.in_tensor(&p.meta.name))?;
        p.from.iter().for_each(|n| src.release(n));
        progress(i);
    }
    Ok(())
}

/// The source values of the previous output tensor: an FP8 weight and its scales, or an MLX
/// weight, its biases and scales, are planned one after another from the same source, which is
/// then decoded once.
type Last<'s, 'p> = Option<(&'p [String], Cow<'s, [f32]>)>;

fn write_one<'s, 'p>(
    src: &'s dyn TensorSource,
    p: &'p Planned,
    sink: &mut dyn TensorSink,
    encoder: Option<Encoder<'_>>,
    last: &mut Last<'s, 'p>,
) -> Result<()> {
    let raw = p.transform.is_none()
        && p.from.len() == 1
        && p.from
            .iter()
            .all(|n| src.meta(n).is_some_and(|m| m.dtype == p.meta.dtype));
    if raw {
        *last = None; // nothing decoded is held while bytes stream through
        let name = p.from.first().map(String::as_str).unwrap_or_default();
        let bytes = src.bytes(name).map_err(from_core)?;
        for chunk in bytes.chunks(CHUNK) {
            sink.write(&p.meta.name, chunk).map_err(from_core)?;
        }
        return Ok(());
    }
    let same = matches!(last, Some((from, _)) if *from == p.from.as_slice());
    // Drop values that will not be reused before decoding new ones (peak = one tensor).
    let kept = last.take().filter(|_| same).map(|(_, v)| v);
    let source = match kept {
        Some(v) => v,
        None => source_values(src, &p.from)?,
    };
    let transformed = p.transform.as_ref().map(|t| t(&source));
    let values: &[f32] = transformed.as_deref().unwrap_or(&source);
    let numel = p.meta.numel()? as usize;
    // An encoder may pack several values per stored element (MLX's U32 words); it checks the
    // lengths itself.
    let packs = encoder.is_some() && !wharf_core::cast::encodes_from_f32(p.meta.dtype);
    if !packs && values.len() != numel {
        return Err(Error::new(ErrorKind::Unconvertible(format!(
            "planned {} values, produced {}",
            numel,
            values.len()
        ))));
    }
    match encoder {
        Some(enc) if !wharf_core::cast::encodes_from_f32(p.meta.dtype) => {
            // RELIABILITY.md S17: a NaN or infinity would become a NaN scale that poisons a
            // whole block; quantizing refuses it (float conversions carry values as they are).
            if let Some(i) = wharf_quantizers::first_non_finite(values) {
                return Err(Error::new(ErrorKind::Unconvertible(format!(
                    "value {} at element {i} is not finite; refusing to quantize it",
                    values.get(i).copied().unwrap_or(f32::NAN)
                ))));
            }
            let mut out = vec![0u8; p.meta.nbytes()? as usize];
            enc(&p.meta, values, &mut out).map_err(|e| Error::new(ErrorKind::Unconvertible(e)))?;
            for chunk in out.chunks(CHUNK) {
                sink.write(&p.meta.name, chunk).map_err(from_core)?;
            }
        }
        // Float storages encode element by element: a chunk at a time, so no second copy of a
        // large tensor is ever held.
        _ => {
            let per_chunk = CHUNK / 4;
            let mut out = Vec::new();
            for vals in values.chunks(per_chunk) {
                out.resize(p.meta.dtype.row_bytes(vals.len() as u64)? as usize, 0);
                encode(p.meta.dtype, vals, &mut out)?;
                sink.write(&p.meta.name, &out).map_err(from_core)?;
            }
        }
    }
    *last = Some((&p.from, source));
    Ok(())
}

/// The concatenated values of `from`.
fn source_values<'s>(src: &'s dyn TensorSource, from: &[String]) -> Result<Cow<'s, [f32]>> {
    match from {
        [one] => values_of(src, one),
        many => {
            let mut v = Vec::new();
            for name in many {
                v.extend_from_slice(&values_of(src, name)?);
            }
            Ok(Cow::Owned(v))
        }
    }
}

/// One source tensor's values: borrowed straight from the mapped file when it is stored as
/// aligned little-endian F32 (no copy of the largest tensor), decoded otherwise.
fn values_of<'a>(src: &'a dyn TensorSource, name: &str) -> Result<Cow<'a, [f32]>> {
    let meta = src.require(name).map_err(from_core)?;
    if meta.dtype == DType::F32 && cfg!(target_endian = "little") {
        let bytes = src.bytes(name).map_err(from_core)?;
        if let Cow::Borrowed(b) = bytes
            && let Ok(v) = bytemuck::try_cast_slice::<u8, f32>(b)
        {
            return Ok(Cow::Borrowed(v));
        }
    }
    read_f32(src, name).map(Cow::Owned)
}

/// Decodes one source tensor to f32.
pub fn read_f32(src: &dyn TensorSource, name: &str) -> Result<Vec<f32>> {
    let meta = src.require(name).map_err(from_core)?;
    let n = meta.numel()? as usize;
    let bytes = src.bytes(name).map_err(from_core)?;
    let mut out = vec![0f32; n];
    // GGML blocks (a quantized GGUF read for requantizing) decode through the codecs.
    let decoded = if wharf_core::cast::decodes_to_f32(meta.dtype) {
        decode_f32(meta.dtype, &bytes, &mut out).map_err(|e| e.to_string())
    } else {
        wharf_quantizers::ggml::dequantize(meta.dtype, &bytes, &mut out).map_err(|e| e.to_string())
    };
    decoded.map_err(|e| Error::new(ErrorKind::Unconvertible(e)).in_tensor(name))?;
    Ok(out)
}

fn encode(dtype: DType, values: &[f32], out: &mut [u8]) -> Result<()> {
    encode_f32(dtype, values, out).map_err(|e| Error::new(ErrorKind::Unconvertible(e.to_string())))
}
