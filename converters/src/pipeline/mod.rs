//! Streaming tensor copy: one output tensor at a time goes from a source to a sink, either as
//! raw bytes (same storage) or decoded to f32, transformed and re-encoded.
//!
//! Peak memory is one output tensor (plus its f32 form when it is transformed), never the model.

use std::borrow::Cow;

use wharf_core::cast::{decode_f32, encode_f32};
use wharf_core::{DType, TensorMeta, TensorSink, TensorSource};
use wharf_quantizers::{Elements, QuantError};

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

/// Makes the bytes of output tensors from their source values: every storage the core casts do
/// not cover (GGML blocks, FP8 codes, packed words), and any other tensor it claims (the scales
/// and biases computed with those codes).
pub trait Encoder: Sync {
    /// Whether [`Encoder::encode`] writes `meta` (by default: a storage the casts do not cover).
    fn claims(&self, meta: &TensorMeta) -> bool {
        !wharf_core::cast::encodes_from_f32(meta.dtype)
    }

    /// Writes the bytes of `meta` into `out` (exactly `meta.nbytes()` long) from the values of
    /// its sources: BF16 as stored when the tensor has one BF16 source and no transform, f32
    /// otherwise. Must refuse NaN and infinity (RELIABILITY.md S17, see [`refusal`]).
    fn encode(
        &self,
        meta: &TensorMeta,
        values: &Elements<'_>,
        out: &mut [u8],
    ) -> std::result::Result<(), String>;
}

/// A closure over f32 values encodes the storages the casts do not cover (the GGUF writer's
/// GGML blocks); NaN and infinity are refused before it runs.
impl<F> Encoder for F
where
    F: Fn(&TensorMeta, &[f32], &mut [u8]) -> std::result::Result<(), String> + Sync,
{
    fn encode(
        &self,
        meta: &TensorMeta,
        values: &Elements<'_>,
        out: &mut [u8],
    ) -> std::result::Result<(), String> {
        let v = f32_values(values);
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(refusal(QuantError::NonFinite { index }, values));
        }
        self(meta, &v, out)
    }
}

/// `values` as f32, borrowed when they already are.
pub fn f32_values<'a>(values: &Elements<'a>) -> Cow<'a, [f32]> {
    match *values {
        Elements::F32(v) => Cow::Borrowed(v),
        other => Cow::Owned(other.to_vec()),
    }
}

/// An encoder's message for a quantizer error: a NaN or infinity, which would become a NaN
/// scale that poisons a whole block, is named with its value and position.
pub fn refusal(e: QuantError, values: &Elements<'_>) -> String {
    match e {
        QuantError::NonFinite { index } if index < values.len() => format!(
            "value {} at element {index} is not finite; refusing to quantize it",
            values.get(index)
        ),
        other => other.to_string(),
    }
}

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
    encoder: Option<&dyn Encoder>,
) -> Result<()> {
    let mut last = None;
    let mut scratch = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        let step = Step {
            src,
            encoder,
            scratch: &mut scratch,
        };
        step.write(p, sink, &mut last)
            .map_err(|e| e.in_tensor(&p.meta.name))?;
        p.from.iter().for_each(|n| src.release(n));
        progress(i);
    }
    Ok(())
}

/// The source values of the previous output tensor: an FP8 weight and its scales, or an MLX
/// weight, its biases and scales, are planned one after another from the same source, which is
/// then read once.
type Last<'s, 'p> = Option<(&'p [String], Held<'s>)>;

/// Source values as held between output tensors.
enum Held<'s> {
    /// One BF16 source's stored bytes (usually borrowed from the mapped file).
    Bf16(Cow<'s, [u8]>),
    /// f32 values: borrowed aligned F32 storage, or decoded and concatenated.
    F32(Cow<'s, [f32]>),
}

impl Held<'_> {
    fn elements(&self) -> Elements<'_> {
        match self {
            Held::Bf16(b) => Elements::Bf16(b),
            Held::F32(v) => Elements::F32(v),
        }
    }

    /// The values as f32, widening BF16 once (in parallel) for transforms and float casts.
    fn f32(&mut self) -> &[f32] {
        if let Held::Bf16(b) = self {
            *self = Held::F32(Cow::Owned(Elements::Bf16(b).to_vec()));
        }
        match self {
            Held::F32(v) => v,
            Held::Bf16(_) => &[],
        }
    }
}

/// What writing one tensor needs besides the tensor: the source, the encoder, and an output
/// buffer reused from tensor to tensor (no fresh zeroed pages per weight).
struct Step<'s, 'e, 'b> {
    src: &'s dyn TensorSource,
    encoder: Option<&'e dyn Encoder>,
    scratch: &'b mut Vec<u8>,
}

impl<'s> Step<'s, '_, '_> {
    fn write<'p>(
        self,
        p: &'p Planned,
        sink: &mut dyn TensorSink,
        last: &mut Last<'s, 'p>,
    ) -> Result<()> {
        let src = self.src;
        let claimed = self.encoder.filter(|e| e.claims(&p.meta));
        let raw = claimed.is_none()
            && p.transform.is_none()
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
        // Drop values that will not be reused before reading new ones (peak = one tensor).
        let kept = last.take().filter(|_| same).map(|(_, v)| v);
        let mut held = match kept {
            Some(v) => v,
            None => source_values(src, &p.from)?,
        };
        let transformed = p.transform.as_ref().map(|t| t(held.f32()));
        match claimed {
            Some(enc) => {
                let values = match &transformed {
                    Some(v) => Elements::F32(v),
                    None => held.elements(),
                };
                let out = self.scratch;
                out.clear();
                out.resize(p.meta.nbytes()? as usize, 0);
                let e = enc.encode(&p.meta, &values, out);
                e.map_err(|e| Error::new(ErrorKind::Unconvertible(e)))?;
                for chunk in out.chunks(CHUNK) {
                    sink.write(&p.meta.name, chunk).map_err(from_core)?;
                }
            }
            None => {
                let values = match &transformed {
                    Some(v) => v,
                    None => held.f32(),
                };
                write_floats(&p.meta, values, sink)?;
            }
        }
        *last = Some((&p.from, held));
        Ok(())
    }
}

/// Float storages encode element by element: a chunk at a time, so no second copy of a large
/// tensor is ever held.
fn write_floats(meta: &TensorMeta, values: &[f32], sink: &mut dyn TensorSink) -> Result<()> {
    let numel = meta.numel()? as usize;
    if values.len() != numel {
        return Err(Error::new(ErrorKind::Unconvertible(format!(
            "planned {} values, produced {}",
            numel,
            values.len()
        ))));
    }
    let per_chunk = CHUNK / 4;
    let mut out = Vec::new();
    for vals in values.chunks(per_chunk) {
        out.resize(meta.dtype.row_bytes(vals.len() as u64)? as usize, 0);
        encode(meta.dtype, vals, &mut out)?;
        sink.write(&meta.name, &out).map_err(from_core)?;
    }
    Ok(())
}

/// The concatenated values of `from`: a single BF16 source as its stored bytes.
fn source_values<'s>(src: &'s dyn TensorSource, from: &[String]) -> Result<Held<'s>> {
    match from {
        [one] if src.meta(one).is_some_and(|m| m.dtype == DType::BF16) => {
            let meta = src.require(one).map_err(from_core)?;
            let bytes = src.bytes(one).map_err(from_core)?;
            if bytes.len() as u64 != meta.nbytes()? {
                return Err(Error::new(ErrorKind::Unconvertible(format!(
                    "{} bytes stored for {} BF16 values",
                    bytes.len(),
                    meta.numel()?
                )))
                .in_tensor(one));
            }
            Ok(Held::Bf16(bytes))
        }
        [one] => values_of(src, one).map(Held::F32),
        many => {
            let mut v = Vec::new();
            for name in many {
                v.extend_from_slice(&values_of(src, name)?);
            }
            Ok(Held::F32(Cow::Owned(v)))
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
