//! The making side of the pipeline: one planned tensor's bytes from its sources, handed on in
//! pieces — raw storage borrowed straight from the source, everything else in owned buffers
//! that the writer gives back for reuse.

use std::borrow::Cow;
use std::sync::mpsc::Receiver;

use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::Elements;

use super::read::Buffer;
use super::{CHUNK, Encoder, Planned, read_f32};
use crate::error::{Error, ErrorKind, Result, from_core};

/// Hands one piece of the current output tensor to the writer; fails once the writer stopped.
pub(super) type Emit<'s, 'f> = dyn FnMut(Cow<'s, [u8]>) -> Result<()> + 'f;

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
    /// One BF16 source's stored bytes, read by the reader thread (`read.rs`).
    Read(Buffer),
}

impl Held<'_> {
    fn elements(&self) -> Elements<'_> {
        match self {
            Held::Bf16(b) => Elements::Bf16(b),
            Held::F32(v) => Elements::F32(v),
            Held::Read(b) => Elements::Bf16(b.bytes()),
        }
    }

    /// The values as f32, widening BF16 once (in parallel) for transforms and float casts.
    fn f32(&mut self) -> &[f32] {
        if !matches!(self, Held::F32(_)) {
            *self = Held::F32(Cow::Owned(self.elements().to_vec()));
        }
        match self {
            Held::F32(v) => v,
            Held::Bf16(_) | Held::Read(_) => &[],
        }
    }
}

/// Makes planned tensors one after another: the source, the encoder, the values the previous
/// tensor read, and the buffers the writer has finished with (no fresh zeroed pages per
/// weight).
pub(super) struct Maker<'s, 'e, 'p> {
    src: &'s dyn TensorSource,
    encoder: Option<&'e dyn Encoder>,
    spare: Receiver<Vec<u8>>,
    /// Source tensors read ahead by the reader thread, in plan order.
    reads: Receiver<Result<Buffer>>,
    last: Last<'s, 'p>,
}

impl<'s, 'e, 'p> Maker<'s, 'e, 'p> {
    /// A maker holding nothing yet, taking buffers back from `spare`.
    pub fn new(
        src: &'s dyn TensorSource,
        encoder: Option<&'e dyn Encoder>,
        spare: Receiver<Vec<u8>>,
        reads: Receiver<Result<Buffer>>,
    ) -> Self {
        Maker {
            src,
            encoder,
            spare,
            reads,
            last: None,
        }
    }

    /// A buffer the writer gave back, or a new one.
    fn buffer(&self) -> Vec<u8> {
        self.spare.try_recv().unwrap_or_default()
    }

    /// Makes `p` and hands its bytes, in order, to `emit`; its source values come from the
    /// reader thread when `read` (see `read::schedule`), else from the source.
    pub fn make(&mut self, p: &'p Planned, read: bool, emit: &mut Emit<'s, '_>) -> Result<()> {
        let src = self.src;
        let claimed = self.encoder.filter(|e| e.claims(&p.meta));
        if is_raw(src, self.encoder, p) {
            self.last = None; // nothing decoded is held while bytes stream through
            let name = p.from.first().map(String::as_str).unwrap_or_default();
            return emit(src.bytes(name).map_err(from_core)?);
        }
        let same = matches!(&self.last, Some((from, _)) if *from == p.from.as_slice());
        // Drop values that will not be reused before reading new ones (peak = one tensor).
        let kept = self.last.take().filter(|_| same).map(|(_, v)| v);
        let mut held = match kept {
            Some(v) => v,
            None if read => self.received()?,
            None => source_values(src, &p.from)?,
        };
        let transformed = p.transform.as_ref().map(|t| t(held.f32()));
        match claimed {
            Some(enc) => {
                let values = match &transformed {
                    Some(v) => Elements::F32(v),
                    None => held.elements(),
                };
                let mut out = self.buffer();
                out.clear();
                out.resize(p.meta.nbytes()? as usize, 0);
                let e = enc.encode(&p.meta, &values, &mut out);
                e.map_err(|e| Error::new(ErrorKind::Unconvertible(e)))?;
                emit(Cow::Owned(out))?;
            }
            None => {
                let values = match &transformed {
                    Some(v) => v,
                    None => held.f32(),
                };
                self.floats(&p.meta, values, emit)?;
            }
        }
        self.last = Some((&p.from, held));
        Ok(())
    }

    /// The next source tensor from the reader thread.
    fn received(&self) -> Result<Held<'s>> {
        let stopped = || Error::new(ErrorKind::Output("the source reader stopped".into()));
        self.reads.recv().map_err(|_| stopped())?.map(Held::Read)
    }

    /// Float storages encode element by element: a chunk at a time, so no second copy of a
    /// large tensor is ever held.
    fn floats(&self, meta: &TensorMeta, values: &[f32], emit: &mut Emit<'s, '_>) -> Result<()> {
        let numel = meta.numel()? as usize;
        if values.len() != numel {
            return Err(Error::new(ErrorKind::Unconvertible(format!(
                "planned {} values, produced {}",
                numel,
                values.len()
            ))));
        }
        for vals in values.chunks(CHUNK / 4) {
            let mut out = self.buffer();
            out.resize(meta.dtype.row_bytes(vals.len() as u64)? as usize, 0);
            wharf_core::cast::encode_f32(meta.dtype, vals, &mut out)
                .map_err(|e| Error::new(ErrorKind::Unconvertible(e.to_string())))?;
            emit(Cow::Owned(out))?;
        }
        Ok(())
    }
}

/// Whether `p` is its single source's stored bytes as they are: no encoder claims it, no
/// transform, the same storage.
pub(super) fn is_raw(src: &dyn TensorSource, encoder: Option<&dyn Encoder>, p: &Planned) -> bool {
    encoder.filter(|e| e.claims(&p.meta)).is_none()
        && p.transform.is_none()
        && p.from.len() == 1
        && p.from
            .iter()
            .all(|n| src.meta(n).is_some_and(|m| m.dtype == p.meta.dtype))
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
