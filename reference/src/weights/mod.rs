//! Where the forward pass gets its numbers: logical weights, named as in the HF checkpoint
//! (`model.layers.0.self_attn.q_proj.weight`), handed out as f32 row blocks dequantized on the
//! fly from whatever storage the checkpoint uses, or as the stored rows themselves
//! ([`StoredRows`]) where [`crate::qdot`] reads that storage in place. Nothing holds a whole
//! model in f32.

mod gguf;
mod hf;
mod mlx_names;

use std::borrow::Cow;
use std::fmt::Debug;

use wharf_core::model::ModelSpec;
use wharf_core::{DType, TensorMeta, TensorSource};

pub use gguf::GgufWeights;
pub use hf::HfWeights;

use crate::{Error, Result};

/// A model's weights in HF semantics, whatever the bytes on disk.
///
/// Implementations undo storage-specific layouts (GGUF's permuted Q/K rows, split `kv_b`,
/// stacked experts) so the forward pass has one meaning for every name.
pub trait Weights: Send + Sync + Debug {
    /// The model description the weights belong to.
    fn spec(&self) -> &ModelSpec;

    /// `[rows, cols]` of the logical weight `name` (1-D tensors are one row), or `None` when the
    /// checkpoint does not have it.
    fn shape(&self, name: &str) -> Option<[usize; 2]>;

    /// Writes rows `start ..` of `name` into `out`, whose length is a whole number of rows.
    fn read_rows(&self, name: &str, start: usize, out: &mut [f32]) -> Result<()>;

    /// The rows of `name` exactly as stored, when they are whole rows of one storage type
    /// that kernels can read in place ([`crate::qdot`]); `None` when they need decoding first.
    fn stored_rows(&self, _name: &str) -> Option<StoredRows<'_>> {
        None
    }

    /// Rows the storage of `name` decodes together (128 for block FP8): row blocks read with
    /// [`Weights::read_rows`] should start and end on multiples of it, or each read decodes
    /// rows it then throws away.
    fn row_align(&self, _name: &str) -> usize {
        1
    }

    /// Drops the cached pages of `name`'s storage when page release is on (a matmul calls it
    /// after reading the whole weight), so resident memory stays near one weight instead of
    /// growing to the whole mapped model; the next read faults the pages back in.
    fn release(&self, _name: &str) {}

    /// Turns page release on or off (off by default: it trades page faults for memory).
    fn set_release_pages(&mut self, _on: bool) {}

    /// llama.cpp's per-frequency rope divisors (`rope_freqs.weight`), when the checkpoint
    /// stores them instead of a scaling rule in its metadata.
    fn rope_freq_factors(&self) -> Result<Option<Vec<f32>>> {
        Ok(None)
    }
}

/// A logical weight's rows as stored: `rows` runs of `row_bytes` bytes of `dtype`, in storage
/// order, possibly llama.cpp's per-head Q/K permutation of the logical order.
#[derive(Debug)]
pub struct StoredRows<'a> {
    /// The storage type of every row.
    pub dtype: DType,
    bytes: Cow<'a, [u8]>,
    row_bytes: usize,
    rows: usize,
    /// Heads of a GGUF Llama Q/K projection, whose rows are stored permuted.
    permuted_heads: Option<usize>,
    /// Block FP8: one f32 scale per `block` of rows and columns, row-major over the grid.
    scales: Option<BlockScales<'a>>,
}

/// The scales of block-FP8 rows (DeepSeek's `weight_scale_inv`): little-endian f32,
/// `[ceil(rows / block.0), grid_cols]`.
#[derive(Debug)]
pub struct BlockScales<'a> {
    bytes: Cow<'a, [u8]>,
    grid_cols: usize,
    block: (usize, usize),
}

impl<'a> StoredRows<'a> {
    /// Rows `first .. first + rows` of a stored tensor's bytes; `None` when they are not there.
    pub(crate) fn new(
        dtype: DType,
        bytes: Cow<'a, [u8]>,
        first: usize,
        [rows, cols]: [usize; 2],
        permuted_heads: Option<usize>,
    ) -> Option<Self> {
        let row_bytes = usize::try_from(dtype.row_bytes(cols as u64).ok()?).ok()?;
        let range =
            first.checked_mul(row_bytes)?..first.checked_add(rows)?.checked_mul(row_bytes)?;
        let bytes = match bytes {
            Cow::Borrowed(b) => Cow::Borrowed(b.get(range)?),
            Cow::Owned(v) => Cow::Owned(v.get(range)?.to_vec()),
        };
        Some(StoredRows {
            dtype,
            bytes,
            row_bytes,
            rows,
            permuted_heads,
            scales: None,
        })
    }

    /// The same rows scaled per `block` by `bytes` (f32 `[ceil(rows / block.0),
    /// ceil(cols / block.1)]`, checked); for rows read from their first.
    pub(crate) fn with_block_scales(
        mut self,
        bytes: Cow<'a, [u8]>,
        cols: usize,
        block: (usize, usize),
    ) -> Option<Self> {
        let (bh, bw) = (block.0.max(1), block.1.max(1));
        let grid_cols = cols.div_ceil(bw);
        let want = self
            .rows
            .div_ceil(bh)
            .checked_mul(grid_cols)?
            .checked_mul(4)?;
        if bytes.len() != want || self.permuted_heads.is_some() {
            return None;
        }
        self.scales = Some(BlockScales {
            bytes,
            grid_cols,
            block: (bh, bw),
        });
        Some(self)
    }

    /// For block-scaled rows: the scales of logical row `r`'s block row, written into `out`
    /// (`None` when there are none).
    pub fn block_scales(&self, r: usize, out: &mut Vec<f32>) -> Option<()> {
        let s = self.scales.as_ref()?;
        let at = (r / s.block.0) * s.grid_cols * 4;
        let bytes = s.bytes.get(at..at + s.grid_cols * 4)?;
        out.clear();
        out.extend(
            bytes
                .as_chunks::<4>()
                .0
                .iter()
                .map(|b| f32::from_le_bytes(*b)),
        );
        Some(())
    }

    /// The column width of a scale block (0 when there are none).
    pub fn block_scales_width(&self) -> usize {
        self.scales.as_ref().map_or(0, |s| s.block.1)
    }

    /// Rows that share one set of block scales (1 when there are none).
    pub fn scale_rows(&self) -> usize {
        self.scales.as_ref().map_or(1, |s| s.block.0)
    }

    /// Number of logical rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of one stored row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// The stored bytes of logical row `r`.
    pub fn row(&self, r: usize) -> Option<&[u8]> {
        if r >= self.rows {
            return None;
        }
        let s = match self.permuted_heads {
            Some(heads) => gguf::llama_qk_row(r, self.rows, heads),
            None => r,
        };
        self.bytes.get(s * self.row_bytes..(s + 1) * self.row_bytes)
    }
}

/// The whole of a (small) weight, e.g. a norm vector or bias.
pub fn whole(w: &dyn Weights, name: &str) -> Result<Vec<f32>> {
    let [rows, cols] = w
        .shape(name)
        .ok_or_else(|| Error::MissingWeight(name.to_owned()))?;
    let mut out = vec![0f32; rows * cols];
    w.read_rows(name, 0, &mut out)?;
    Ok(out)
}

/// `[rows, cols]` of a stored tensor: the last dimension is the row, the rest are rows.
pub(crate) fn matrix_shape(meta: &TensorMeta) -> Option<[usize; 2]> {
    let cols = usize::try_from(meta.shape.row_len()).ok()?;
    let rows = usize::try_from(meta.shape.rows().ok()?).ok()?;
    Some([rows.max(1), cols])
}

fn decode_err(name: &str, reason: impl ToString) -> Error {
    Error::Decode {
        name: name.to_owned(),
        reason: reason.to_string(),
    }
}

/// Dequantizes stored rows `start .. start + out.len() / cols` of a dense or GGML-block tensor.
pub(crate) fn decode_rows(
    src: &dyn TensorSource,
    name: &str,
    start: usize,
    out: &mut [f32],
) -> Result<()> {
    let meta = src
        .meta(name)
        .ok_or_else(|| Error::MissingWeight(name.to_owned()))?;
    let [rows, cols] = matrix_shape(meta).ok_or_else(|| decode_err(name, "shape too large"))?;
    if cols == 0 || !out.len().is_multiple_of(cols) {
        return Err(decode_err(name, "output is not a whole number of rows"));
    }
    let n = out.len() / cols;
    if start.checked_add(n).is_none_or(|end| end > rows) {
        return Err(decode_err(
            name,
            format!("rows {start}..+{n} beyond {rows}"),
        ));
    }
    let row_bytes = meta
        .dtype
        .row_bytes(cols as u64)
        .ok()
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| decode_err(name, "row size"))?;
    let bytes = src.bytes(name)?;
    let slice = bytes
        .get(start * row_bytes..(start + n) * row_bytes)
        .ok_or_else(|| decode_err(name, "truncated"))?;
    dequantize(meta.dtype, slice, out).map_err(|e| decode_err(name, e))
}

/// Bytes of any storage wharf reads as a single tensor → f32.
fn dequantize(dtype: DType, src: &[u8], out: &mut [f32]) -> Result<(), String> {
    if wharf_quantizers::ggml::can_dequantize(dtype) {
        return wharf_quantizers::ggml::dequantize(dtype, src, out).map_err(|e| e.to_string());
    }
    Err(format!(
        "{dtype:?} needs a scale tensor or is not a weight storage"
    ))
}
