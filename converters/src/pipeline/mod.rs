//! Streaming tensor copy: one output tensor at a time goes from a source to a sink, either as
//! raw bytes (same storage) or decoded to f32 and re-encoded a row block at a time (`make.rs`;
//! a transformed tensor whole), the next tensor made while the current one is written
//! (`overlap.rs`), and the sources of the tensors after it read ahead: through the page cache
//! (`ahead.rs`) or, for the BF16 tensors the maker decodes, directly into reused buffers
//! (`read.rs`).
//!
//! Peak memory is a few row blocks, the f32 form of a transformed tensor, what encoders keep
//! between the tensors of one weight, and the direct reader's buffers (the source tensor being
//! made, the next, and others within 64 MiB), never the model nor a stacked output.

mod ahead;
mod make;
mod overlap;
mod read;
#[cfg(test)]
mod read_tests;

use std::borrow::Cow;
use std::ops::Range;

use wharf_core::{TensorMeta, TensorSink, TensorSource};
use wharf_quantizers::{Elements, QuantError};

use crate::error::{Result, from_core};

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

/// How the maker may cut one output tensor's source values ([`Encoder::slicing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slicing {
    /// A row block at a time, each a multiple of this many source rows (128 for FP8 blocks)
    /// except the last block of each source; the bytes do not depend on where it cuts.
    Rows(usize),
    /// All source values at once (a per-tensor scale needs every value first).
    Whole,
    /// No source values: the encoder already holds the bytes, computed with an earlier tensor
    /// of the same weight (its scales, taken with its codes).
    Kept,
}

/// Makes the bytes of output tensors from their source values: every storage the core casts do
/// not cover (GGML blocks, FP8 codes, packed words), and any other tensor it claims (the scales
/// and biases computed with those codes).
///
/// Source rows are counted across the tensor's concatenated sources (experts stacked); a tensor
/// with a transform is always made whole.
pub trait Encoder: Sync {
    /// Whether [`Encoder::encode`] writes `meta` (by default: a storage the casts do not cover).
    fn claims(&self, meta: &TensorMeta) -> bool {
        !wharf_core::cast::encodes_from_f32(meta.dtype)
    }

    /// How `meta` may be cut, asked as the maker starts it (so an encoder can answer
    /// [`Slicing::Kept`] once an earlier tensor has left it the bytes).
    fn slicing(&self, _meta: &TensorMeta) -> Slicing {
        Slicing::Rows(1)
    }

    /// Appends to `out` (empty, its capacity reused) the bytes of `meta` that source rows
    /// `rows` make, from their values: BF16 as stored when the tensor's sources are stored BF16
    /// and there is no transform, f32 otherwise; `None` for [`Slicing::Kept`]. Must refuse NaN
    /// and infinity (RELIABILITY.md S17, see [`refusal`]).
    fn encode(
        &self,
        meta: &TensorMeta,
        rows: Range<usize>,
        values: Option<&Elements<'_>>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), String>;
}

/// A closure over f32 values of whole rows encodes the storages the casts do not cover (the GGUF
/// writer's GGML blocks), into `out` sized for those rows; NaN and infinity are refused before
/// it runs.
impl<F> Encoder for F
where
    F: Fn(&TensorMeta, Range<usize>, &[f32], &mut [u8]) -> std::result::Result<(), String> + Sync,
{
    fn encode(
        &self,
        meta: &TensorMeta,
        rows: Range<usize>,
        values: Option<&Elements<'_>>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        let values = values.ok_or("no values to encode")?;
        let v = f32_values(values);
        if let Some(index) = wharf_quantizers::first_non_finite(&v) {
            return Err(refusal(QuantError::NonFinite { index }, values));
        }
        let row = meta
            .dtype
            .row_bytes(meta.shape.row_len())
            .map_err(|e| e.to_string())?;
        out.resize(rows.len() * row as usize, 0);
        self(meta, rows, &v, out)
    }
}

/// `values` encoded as `dtype` (F32/F16/BF16) and appended to `out`: the scales and biases
/// encoders write beside their codes.
pub fn append_encoded(
    dtype: wharf_core::DType,
    values: &[f32],
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let at = out.len();
    let n = dtype
        .row_bytes(values.len() as u64)
        .map_err(|e| e.to_string())? as usize;
    out.resize(at + n, 0);
    wharf_core::cast::encode_f32(dtype, values, &mut out[at..]).map_err(|e| e.to_string())
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

/// Source values per row block a tensor is made in, by default (8 Mi, 32 MiB as f32).
pub const BLOCK_VALUES: usize = make::SLICE_VALUES;

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
///
/// The next tensor is made while the current one is written (see `overlap.rs`); the bytes
/// written are the same as making and writing one tensor after another.
pub fn run_with(
    src: &dyn TensorSource,
    plan: &[Planned],
    sink: &mut dyn TensorSink,
    progress: &mut dyn FnMut(usize),
    encoder: Option<&dyn Encoder>,
) -> Result<()> {
    run_in_blocks(src, plan, sink, progress, encoder, make::SLICE_VALUES)
}

/// [`run_with`] with row blocks of about `block_values` source values instead of the default 8
/// Mi: the output is the same bytes at any block size (tests make every tensor many blocks).
pub fn run_in_blocks(
    src: &dyn TensorSource,
    plan: &[Planned],
    sink: &mut dyn TensorSink,
    progress: &mut dyn FnMut(usize),
    encoder: Option<&dyn Encoder>,
    block_values: usize,
) -> Result<()> {
    overlap::run(
        src,
        plan,
        sink,
        progress,
        encoder,
        read::SIZES,
        block_values,
    )
}

/// Decodes one source tensor to f32.
pub fn read_f32(src: &dyn TensorSource, name: &str) -> Result<Vec<f32>> {
    let meta = src.require(name).map_err(from_core)?;
    let n = meta.numel()? as usize;
    let bytes = src.bytes(name).map_err(from_core)?;
    let mut out = vec![0f32; n];
    make::decode(meta.dtype, &bytes, &mut out).map_err(|e| e.in_tensor(name))?;
    Ok(out)
}

#[cfg(test)]
mod tests;
