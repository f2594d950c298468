//! The making side of the pipeline: one planned tensor's bytes from its sources, handed on in
//! pieces — raw storage borrowed straight from the source, everything else in owned buffers
//! that the writer gives back for reuse.
//!
//! A tensor without a transform is made a row block at a time ([`Slicing::Rows`]): each source
//! in turn (the experts of a stack), a block of at most [`SLICE_VALUES`] of its values decoded,
//! encoded and handed on, so what is held never grows with the output or the number of
//! sources. Rows the source computes (a dequantizing view) are computed a block at a time too
//! ([`TensorSource::computed_rows`]); stored rows are borrowed from the map.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::mpsc::Receiver;

use wharf_core::{Access, DType, TensorMeta, TensorSource};
use wharf_quantizers::Elements;

use super::read::Buffer;
use super::{CHUNK, Encoder, Planned, Slicing, f32_values, read_f32};
use crate::error::{Error, ErrorKind, Result, from_core};

/// Hands one piece of the current output tensor to the writer; fails once the writer stopped.
pub(super) type Emit<'s, 'f> = dyn FnMut(Cow<'s, [u8]>) -> Result<()> + 'f;

/// Source values in one row block: 8 Mi values (32 MiB as f32).
pub(super) const SLICE_VALUES: usize = 8 << 20;

/// Whole-tensor source values (a transform's input, or a per-tensor scale's).
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

/// Where one source's rows come from while its blocks are made.
enum Stock<'s> {
    /// Its stored bytes, borrowed from the map (or built once by the source).
    Bytes(Cow<'s, [u8]>),
    /// Its stored bytes, read by the reader thread.
    Read(Buffer),
    /// Rows the source computes on demand.
    Computed,
}

/// One row block's values: borrowed from the stock, or decoded.
enum Block<'a> {
    Borrowed(Elements<'a>),
    Owned(Vec<f32>),
}

impl Block<'_> {
    fn elements(&self) -> Elements<'_> {
        match self {
            Block::Borrowed(e) => *e,
            Block::Owned(v) => Elements::F32(v),
        }
    }
}

/// Makes planned tensors one after another: the source, the encoder, and the buffers the
/// writer has finished with (no fresh zeroed pages per block).
pub(super) struct Maker<'s, 'e> {
    src: &'s dyn TensorSource,
    encoder: Option<&'e dyn Encoder>,
    spare: Receiver<Vec<u8>>,
    /// Source tensors read ahead by the reader thread, in plan order.
    reads: Receiver<Result<Buffer>>,
    /// Source values per row block (about).
    block_values: usize,
}

impl<'s, 'e> Maker<'s, 'e> {
    /// A maker taking buffers back from `spare`.
    pub fn new(
        src: &'s dyn TensorSource,
        encoder: Option<&'e dyn Encoder>,
        spare: Receiver<Vec<u8>>,
        reads: Receiver<Result<Buffer>>,
        block_values: usize,
    ) -> Self {
        Maker {
            src,
            encoder,
            spare,
            reads,
            block_values,
        }
    }

    /// A buffer the writer gave back, or a new one, empty.
    fn buffer(&self) -> Vec<u8> {
        let mut b = self.spare.try_recv().unwrap_or_default();
        b.clear();
        b
    }

    /// Makes `p` and hands its bytes, in order, to `emit`; its source values come from the
    /// reader thread when `read` (see `read::schedule`), else from the source. Fails unless
    /// exactly the planned bytes were made.
    pub fn make(&mut self, p: &Planned, read: bool, emit: &mut Emit<'s, '_>) -> Result<()> {
        let src = self.src;
        if is_raw(src, self.encoder, p) {
            let name = p.from.first().map(String::as_str).unwrap_or_default();
            return emit(src.bytes(name).map_err(from_core)?);
        }
        let received = if read { Some(self.received()?) } else { None };
        let claimed = self.encoder.filter(|e| e.claims(&p.meta));
        let slicing = claimed.map_or(Slicing::Rows(1), |e| e.slicing(&p.meta));
        let mut made = 0u64;
        let mut counted = |b: Cow<'s, [u8]>| {
            made += b.len() as u64;
            emit(b)
        };
        match (slicing, claimed) {
            (Slicing::Kept, Some(enc)) => {
                let mut out = self.buffer();
                let rows = 0..p.meta.shape.rows()? as usize;
                enc.encode(&p.meta, rows, None, &mut out)
                    .map_err(unconvertible)?;
                counted(Cow::Owned(out))?;
            }
            (Slicing::Rows(align), _) if p.transform.is_none() && !p.from.is_empty() => {
                self.sliced(p, align.max(1), claimed, received, &mut counted)?;
            }
            _ => self.whole(p, claimed, received, &mut counted)?,
        }
        let planned = p.meta.nbytes()?;
        if made != planned {
            return Err(unconvertible(format!(
                "planned {planned} bytes, made {made}"
            )));
        }
        Ok(())
    }

    /// The next source tensor from the reader thread.
    fn received(&self) -> Result<Buffer> {
        let stopped = || Error::new(ErrorKind::Output("the source reader stopped".into()));
        self.reads.recv().map_err(|_| stopped())?
    }

    /// Makes `p` from all its source values at once (transformed first where planned).
    fn whole(
        &self,
        p: &Planned,
        claimed: Option<&dyn Encoder>,
        received: Option<Buffer>,
        emit: &mut Emit<'s, '_>,
    ) -> Result<()> {
        let mut held = match received {
            Some(b) => Held::Read(b),
            None => source_values(self.src, &p.from)?,
        };
        let transformed = p.transform.as_ref().map(|t| t(held.f32()));
        match claimed {
            Some(enc) => {
                let values = match &transformed {
                    Some(v) => Elements::F32(v),
                    None => held.elements(),
                };
                let mut out = self.buffer();
                let rows = 0..p.meta.shape.rows()? as usize;
                enc.encode(&p.meta, rows, Some(&values), &mut out)
                    .map_err(unconvertible)?;
                emit(Cow::Owned(out))
            }
            None => {
                let values = match &transformed {
                    Some(v) => v,
                    None => held.f32(),
                };
                self.floats(&p.meta, values, emit)
            }
        }
    }

    /// Makes `p` a row block at a time, source after source, blocks a multiple of `align`
    /// rows (and of FP8's 128-row blocks once they are that large).
    fn sliced(
        &self,
        p: &Planned,
        align: usize,
        claimed: Option<&dyn Encoder>,
        mut received: Option<Buffer>,
        emit: &mut Emit<'s, '_>,
    ) -> Result<()> {
        let src = self.src;
        let mut base = 0usize;
        for name in &p.from {
            let meta = src.require(name).map_err(from_core)?;
            let (rows, cols) = (meta.shape.rows()? as usize, meta.shape.row_len() as usize);
            let stock = match received.take() {
                Some(b) => Stock::Read(b),
                None => stock(src, name, meta)?,
            };
            let step = block_rows(self.block_values, cols, align);
            for start in (0..rows).step_by(step) {
                let r = start..rows.min(start + step);
                let at = base + r.start..base + r.end;
                let block =
                    block_of(src, &stock, meta, r.clone()).map_err(|e| e.in_tensor(name))?;
                match claimed {
                    Some(enc) => {
                        let mut out = self.buffer();
                        let values = block.elements();
                        enc.encode(&p.meta, at, Some(&values), &mut out)
                            .map_err(unconvertible)?;
                        emit(Cow::Owned(out))?;
                    }
                    // Same storage: the stored bytes of these rows, as they are.
                    None if meta.dtype == p.meta.dtype && !matches!(stock, Stock::Computed) => {
                        emit(stored_rows(&stock, meta, r)?)?;
                    }
                    None => self.floats(&p.meta, &f32_values(&block.elements()), emit)?,
                }
            }
            base += rows;
            // A stack's sources are each read once: unmap this one's pages now (the page
            // cache keeps them), so the pages mapped stay one source, not the stack.
            if p.from.len() > 1 {
                src.advise(name, Access::Done);
            }
        }
        Ok(())
    }

    /// Float storages encode element by element: a chunk at a time, so no second copy of a
    /// large block is ever held.
    fn floats(&self, meta: &TensorMeta, values: &[f32], emit: &mut Emit<'s, '_>) -> Result<()> {
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

fn unconvertible(e: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unconvertible(e.into()))
}

/// Rows per block for rows of `cols` values: about `values` values, a multiple of `align`, and
/// of 128 when at least that many (so a block read of FP8-stored rows decodes each 128-row
/// scale block once).
fn block_rows(values: usize, cols: usize, align: usize) -> usize {
    let per = (values / cols.max(1)).max(1);
    let mut step = (per / align).max(1) * align;
    if step >= 128 && align <= 128 && 128 % align == 0 {
        step -= step % 128;
    }
    step
}

/// Where `name`'s rows come from: computed by the source, or its stored bytes (checked to be
/// exactly the planned size).
fn stock<'s>(src: &'s dyn TensorSource, name: &str, meta: &TensorMeta) -> Result<Stock<'s>> {
    if src.computed_rows(name, 0..0).is_some() {
        return Ok(Stock::Computed);
    }
    let bytes = src.bytes(name).map_err(from_core)?;
    if bytes.len() as u64 != meta.nbytes()? {
        return Err(unconvertible(format!(
            "{} bytes stored for {} {} values",
            bytes.len(),
            meta.numel()?,
            meta.dtype
        ))
        .in_tensor(name));
    }
    Ok(Stock::Bytes(bytes))
}

/// The stored bytes of rows `r`, borrowed when the stock is.
fn stored_rows<'s>(stock: &Stock<'s>, meta: &TensorMeta, r: Range<usize>) -> Result<Cow<'s, [u8]>> {
    let row = meta.dtype.row_bytes(meta.shape.row_len())? as usize;
    let range = r.start * row..r.end * row;
    Ok(match stock {
        Stock::Bytes(Cow::Borrowed(b)) => Cow::Borrowed(&b[range]),
        Stock::Bytes(Cow::Owned(b)) => Cow::Owned(b[range].to_vec()),
        Stock::Read(b) => Cow::Owned(b.bytes()[range].to_vec()),
        Stock::Computed => Cow::Owned(Vec::new()),
    })
}

/// Rows `r` of one source: BF16 and aligned F32 storage borrowed, other storages decoded,
/// computed rows computed.
fn block_of<'a>(
    src: &dyn TensorSource,
    stock: &'a Stock<'_>,
    meta: &TensorMeta,
    r: Range<usize>,
) -> Result<Block<'a>> {
    let bytes = match stock {
        Stock::Computed => {
            let rows = src
                .computed_rows(&meta.name, r)
                .unwrap_or_else(|| Ok(Vec::new()));
            return rows.map(Block::Owned).map_err(from_core);
        }
        Stock::Bytes(b) => &b[..],
        Stock::Read(b) => b.bytes(),
    };
    let row = meta.dtype.row_bytes(meta.shape.row_len())? as usize;
    let b = &bytes[r.start * row..r.end * row];
    match meta.dtype {
        DType::BF16 => return Ok(Block::Borrowed(Elements::Bf16(b))),
        DType::F32 if cfg!(target_endian = "little") => {
            if let Ok(v) = bytemuck::try_cast_slice::<u8, f32>(b) {
                return Ok(Block::Borrowed(Elements::F32(v)));
            }
        }
        _ => {}
    }
    let mut out = vec![0f32; r.len() * meta.shape.row_len() as usize];
    decode(meta.dtype, b, &mut out)?;
    Ok(Block::Owned(out))
}

/// Stored values to f32: the core casts, or GGML blocks through the codecs (a quantized GGUF
/// read for requantizing).
pub(super) fn decode(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let decoded = if wharf_core::cast::decodes_to_f32(dtype) {
        wharf_core::cast::decode_f32(dtype, bytes, out).map_err(|e| e.to_string())
    } else {
        wharf_quantizers::ggml::dequantize(dtype, bytes, out).map_err(|e| e.to_string())
    };
    decoded.map_err(unconvertible)
}

/// Whether `p` is its single source's stored bytes as they are: no encoder claims it, no
/// transform, the same storage, stored rather than computed.
pub(super) fn is_raw(src: &dyn TensorSource, encoder: Option<&dyn Encoder>, p: &Planned) -> bool {
    encoder.filter(|e| e.claims(&p.meta)).is_none()
        && p.transform.is_none()
        && p.from.len() == 1
        && p.from.iter().all(|n| {
            src.meta(n).is_some_and(|m| m.dtype == p.meta.dtype)
                && src.computed_rows(n, 0..0).is_none()
        })
}

/// The concatenated values of `from`: a single BF16 source as its stored bytes.
fn source_values<'s>(src: &'s dyn TensorSource, from: &[String]) -> Result<Held<'s>> {
    match from {
        [one] if src.meta(one).is_some_and(|m| m.dtype == DType::BF16) => {
            let meta = src.require(one).map_err(from_core)?;
            match stock(src, one, meta)? {
                Stock::Bytes(b) => Ok(Held::Bf16(b)),
                _ => values_of(src, one).map(Held::F32),
            }
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
    if let Some(rows) = src.computed_rows(name, 0..meta.shape.rows()? as usize) {
        return rows
            .map(Cow::Owned)
            .map_err(|e| from_core(e).in_tensor(name));
    }
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
