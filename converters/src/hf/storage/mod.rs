//! Quantized storage in HF folders: which stored tensors make up each *logical* weight, and
//! row-range dequantization of a logical weight to f32.
//!
//! A quantized checkpoint stores one Linear weight as several tensors (codes plus scales, zero
//! points, shapes). [`QuantizedView`] recognises them (`detect.rs`), hides the companions, and
//! presents every logical tensor by its HF name with its logical shape. Dense tensors keep their
//! dtype; quantized ones are presented as F32, decoded on demand (`dequant.rs`), so the view is a
//! [`TensorSource`] any plan can read: `wharf convert` of a DeepSeek FP8 folder to BF16 is the
//! ordinary pipeline over this view. Peak memory is one logical tensor, or one row block with
//! [`QuantizedView::read_rows`].
//!
//! Recognised storages (layouts in `design/FORMATS.md` b5–b8):
//! - DeepSeek native FP8 (`X.weight` F8_E4M3 + `X.weight_scale_inv` f32 per block),
//! - compressed-tensors `float-quantized` FP8 (`X.weight` + `X.weight_scale`, per tensor,
//!   channel or block) and `pack-quantized` INT4/INT8 (`X.weight_packed`, `X.weight_scale`,
//!   `X.weight_shape`, optional `X.weight_zero_point`),
//! - GPTQ (`X.qweight`, `X.qzeros`, `X.scales`, optional `X.g_idx`),
//! - MLX affine (`X.weight` U32 + `X.scales` + `X.biases`; bits and group from config.json's
//!   `quantization`, with per-layer overrides).

mod config;
mod dequant;
mod detect;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::Value;
use wharf_core::{Access, TensorMeta, TensorSource};
use wharf_quantizers::fp8::Fp8Format;
use wharf_quantizers::int4::{CtParams, GptqFormat};
use wharf_quantizers::mlx::MlxParams;

use crate::error::{Error, ErrorKind, Result};

/// How a compressed-tensors FP8 weight is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtFp8Strategy {
    /// One scale (`weight_scale` of shape `[1]` or `[]`).
    Tensor,
    /// One scale per output row (`[rows, 1]`).
    Channel,
    /// One scale per `(rows, cols)` block.
    Block(usize, usize),
}

/// How one logical tensor is stored; names are the stored tensors'.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Storage {
    /// Stored as is (F32, F16, BF16, integers ...).
    Dense,
    /// DeepSeek native FP8: `weight` codes, `scale_inv` f32 `[ceil(r/bh), ceil(c/bw)]`.
    DeepseekFp8 {
        /// The F8 codes.
        weight: String,
        /// The per-block multiplier.
        scale_inv: String,
        /// Block rows and columns (`weight_block_size`).
        block: (usize, usize),
        /// E4M3 or E5M2.
        format: Fp8Format,
    },
    /// compressed-tensors `float-quantized`.
    CtFp8 {
        /// The F8 codes.
        weight: String,
        /// `weight_scale`, in the model dtype.
        scale: String,
        /// Tensor, channel or block.
        strategy: CtFp8Strategy,
        /// E4M3 or E5M2.
        format: Fp8Format,
    },
    /// compressed-tensors `pack-quantized`.
    CtPacked {
        /// `weight_packed` (i32).
        packed: String,
        /// `weight_scale`.
        scale: String,
        /// `weight_zero_point` when asymmetric.
        zero_point: Option<String>,
        /// Bits, group, symmetry and the scale dtype.
        params: CtParams,
    },
    /// GPTQ v1/v2.
    Gptq {
        /// `qweight` i32 `[K / pf, N]`.
        qweight: String,
        /// `qzeros` i32 `[groups, N / pf]`.
        qzeros: String,
        /// `scales` `[groups, N]`.
        scales: String,
        /// `g_idx` i32 `[K]`, when stored.
        g_idx: Option<String>,
        /// 4 or 8.
        bits: u32,
        /// `group_size` (`None` for -1).
        group: Option<usize>,
        /// Zero-point convention.
        format: GptqFormat,
    },
    /// MLX affine.
    Mlx {
        /// Packed U32 codes.
        weight: String,
        /// `scales`, in the source dtype.
        scales: String,
        /// `biases`, in the source dtype.
        biases: String,
        /// Group and bits of this layer.
        params: MlxParams,
    },
}

impl Storage {
    /// A short description (`inspect`): `dense`, `fp8-block 128x128`, `mlx 4-bit g64` ...
    pub fn describe(&self) -> String {
        match self {
            Storage::Dense => "dense".into(),
            Storage::DeepseekFp8 { block, .. } => format!("fp8-block {}x{}", block.0, block.1),
            Storage::CtFp8 { strategy, .. } => match strategy {
                CtFp8Strategy::Tensor => "ct-fp8 tensor".into(),
                CtFp8Strategy::Channel => "ct-fp8 channel".into(),
                CtFp8Strategy::Block(r, c) => format!("ct-fp8 block {r}x{c}"),
            },
            Storage::CtPacked { params, .. } => format!(
                "ct-int{} g{}{}",
                params.bits,
                params.group,
                if params.symmetric { "" } else { " asym" }
            ),
            Storage::Gptq { bits, group, .. } => match group {
                Some(g) => format!("gptq {bits}-bit g{g}"),
                None => format!("gptq {bits}-bit per-channel"),
            },
            Storage::Mlx { params, .. } => {
                format!("mlx {}-bit g{}", params.bits(), params.group())
            }
        }
    }
}

/// One logical tensor: its HF name, presented metadata and storage.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalTensor {
    /// Name, logical shape, and dtype (F32 for quantized storages: what reads produce).
    pub meta: TensorMeta,
    /// How it is stored.
    pub storage: Storage,
}

impl LogicalTensor {
    /// Number of rows (every dimension but the last) and the row length.
    pub fn rows_cols(&self) -> (usize, usize) {
        let cols = self.meta.shape.row_len() as usize;
        let rows = self.meta.shape.rows().unwrap_or(0) as usize;
        (rows, cols)
    }

    /// Rows decoded together: a row range is widened to multiples of this (FP8 blocks of
    /// 128 rows, pack-quantized zero points packed along rows), so readers that go row block by
    /// row block should use blocks of a multiple of it.
    pub fn row_align(&self) -> usize {
        match &self.storage {
            Storage::DeepseekFp8 { block, .. } => block.0.max(1),
            Storage::CtFp8 {
                strategy: CtFp8Strategy::Block(r, _),
                ..
            } => (*r).max(1),
            Storage::CtPacked { params, .. } => (32 / params.bits.max(1)) as usize,
            _ => 1,
        }
    }
}

/// A source seen through its quantized storages: logical tensors only, companions hidden.
pub struct QuantizedView<'a> {
    src: &'a dyn TensorSource,
    logical: Vec<LogicalTensor>,
    metas: Vec<TensorMeta>,
    by_name: BTreeMap<String, usize>,
}

impl std::fmt::Debug for QuantizedView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantizedView")
            .field("logical", &self.logical)
            .finish()
    }
}

impl<'a> QuantizedView<'a> {
    /// Recognises the storage of every tensor of `src`, with parameters from `config`
    /// (config.json: `quantization_config`, or MLX's `quantization`).
    ///
    /// Errors: a quantized weight with a missing or mis-shaped companion, a companion without
    /// its weight, or a quantization config wharf does not read.
    pub fn new(src: &'a dyn TensorSource, config: Option<&Value>) -> Result<Self> {
        let logical = detect::detect(src, config)?;
        let metas = logical.iter().map(|l| l.meta.clone()).collect();
        let by_name = logical
            .iter()
            .enumerate()
            .map(|(i, l)| (l.meta.name.clone(), i))
            .collect();
        Ok(QuantizedView {
            src,
            logical,
            metas,
            by_name,
        })
    }

    /// Every logical tensor, in the order of its main stored tensor.
    pub fn logical(&self) -> &[LogicalTensor] {
        &self.logical
    }

    /// One logical tensor.
    pub fn get(&self, name: &str) -> Option<&LogicalTensor> {
        self.by_name.get(name).map(|&i| &self.logical[i])
    }

    /// Whether any tensor is stored quantized.
    pub fn is_quantized(&self) -> bool {
        self.logical.iter().any(|l| l.storage != Storage::Dense)
    }

    /// Rows `rows` (of the logical tensor flattened to `[rows, cols]`) as f32, row-major.
    ///
    /// Only the stored rows (and scale rows) covering the range are decoded, except for GPTQ,
    /// whose rows are stored as columns: there the whole tensor is decoded and sliced.
    pub fn read_rows(&self, name: &str, rows: Range<usize>) -> Result<Vec<f32>> {
        let t = self.get(name).ok_or_else(|| not_found(name))?;
        read_logical_rows(self.src, t, rows)
    }

    /// The whole logical tensor as f32.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.get(name).ok_or_else(|| not_found(name))?;
        self.read_rows(name, 0..t.rows_cols().0)
    }
}

/// Rows `rows` of the logical tensor `t` read straight from `src`: for owners of a source that
/// keep the [`QuantizedView::logical`] table rather than a view borrowing the source.
pub fn read_logical_rows(
    src: &dyn TensorSource,
    t: &LogicalTensor,
    rows: Range<usize>,
) -> Result<Vec<f32>> {
    let name = &t.meta.name;
    let (n, _) = t.rows_cols();
    if rows.start > rows.end || rows.end > n {
        return Err(Error::new(ErrorKind::Unconvertible(format!(
            "rows {}..{} of a tensor with {n} rows",
            rows.start, rows.end
        )))
        .in_tensor(name));
    }
    dequant::read_rows(src, t, rows).map_err(|e| e.in_tensor(name))
}

fn not_found(name: &str) -> Error {
    Error::new(ErrorKind::Index(format!("no tensor named `{name}`"))).in_tensor(name)
}

impl TensorSource for QuantizedView<'_> {
    fn tensors(&self) -> &[TensorMeta] {
        &self.metas
    }

    fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
        let t = self.get(name).ok_or_else(|| not_found(name))?;
        if t.storage == Storage::Dense {
            return self.src.bytes(name);
        }
        let values = self.read_f32(name)?;
        Ok(Cow::Owned(bytemuck::cast_slice(&values).to_vec()))
    }

    fn advise(&self, name: &str, access: Access) {
        match self.get(name).map(|t| &t.storage) {
            Some(s) => stored_names(name, s)
                .iter()
                .for_each(|n| self.src.advise(n, access)),
            None => self.src.advise(name, access),
        }
    }

    fn stored(&self, name: &str) -> Option<wharf_core::Stored> {
        match self.get(name) {
            Some(t) if t.storage == Storage::Dense => self.src.stored(name),
            _ => None,
        }
    }

    fn computed_rows(
        &self,
        name: &str,
        rows: Range<usize>,
    ) -> Option<wharf_core::Result<Vec<f32>>> {
        match self.get(name) {
            // An empty range only asks whether the tensor is computed.
            Some(t) if t.storage != Storage::Dense && rows.is_empty() => Some(Ok(Vec::new())),
            Some(t) if t.storage != Storage::Dense => {
                Some(read_logical_rows(self.src, t, rows).map_err(Into::into))
            }
            Some(_) => self.src.computed_rows(name, rows),
            None => None,
        }
    }

    fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.by_name.get(name).map(|&i| &self.metas[i])
    }
}

/// The stored tensors behind one logical tensor.
pub fn stored_names<'s>(logical: &'s str, storage: &'s Storage) -> Vec<&'s str> {
    match storage {
        Storage::Dense => vec![logical],
        Storage::DeepseekFp8 {
            weight, scale_inv, ..
        } => vec![weight, scale_inv],
        Storage::CtFp8 { weight, scale, .. } => vec![weight, scale],
        Storage::CtPacked {
            packed,
            scale,
            zero_point,
            ..
        } => [Some(packed), Some(scale), zero_point.as_ref()]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect(),
        Storage::Gptq {
            qweight,
            qzeros,
            scales,
            g_idx,
            ..
        } => [Some(qweight), Some(qzeros), Some(scales), g_idx.as_ref()]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect(),
        Storage::Mlx {
            weight,
            scales,
            biases,
            ..
        } => vec![weight, scales, biases],
    }
}

#[cfg(test)]
mod tests;
