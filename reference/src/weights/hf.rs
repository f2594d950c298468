//! Weights of an HF folder: the logical names are the HF names. Dense tensors (F32/F16/BF16)
//! are decoded directly; quantized storages (DeepSeek / compressed-tensors FP8, INT4
//! pack-quantized, GPTQ, MLX affine) are recognised once by `converters::hf::storage` and
//! dequantized row range by row range.

use std::collections::HashMap;

use wharf_converters::AnySource;
use wharf_converters::hf::storage::{
    LogicalTensor, QuantizedView, Storage, read_logical_rows, stored_names,
};
use wharf_core::model::ModelSpec;
use wharf_core::{Access, DType, TensorSource};
use wharf_quantizers::fp8::Fp8Format;

use super::mlx_names::{Alias, aliases};
use super::{StoredRows, Weights, decode_rows, matrix_shape};
use crate::{Error, Result};

/// An HF checkpoint read in place.
#[derive(Debug)]
pub struct HfWeights {
    source: AnySource,
    spec: ModelSpec,
    /// Every logical tensor and how it is stored.
    logical: HashMap<String, LogicalTensor>,
    /// HF names for weights stored under mlx-lm's DeepSeek names.
    aliases: HashMap<String, Alias>,
    /// Drop a weight's cached pages after each matmul ([`Weights::release`]).
    release_pages: bool,
}

impl HfWeights {
    /// Wraps an opened source, its `config.json` (for quantization parameters) and the
    /// description of the model it holds.
    pub fn new(
        source: AnySource,
        config: Option<&serde_json::Value>,
        spec: ModelSpec,
    ) -> Result<Self> {
        let logical: HashMap<String, LogicalTensor> = QuantizedView::new(&source, config)?
            .logical()
            .iter()
            .map(|t| (t.meta.name.clone(), t.clone()))
            .collect();
        let shapes = logical
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    t.meta.shape.dims().iter().map(|&d| d as usize).collect(),
                )
            })
            .collect();
        let aliases = aliases(&shapes, &spec);
        Ok(HfWeights {
            source,
            spec,
            logical,
            aliases,
            release_pages: false,
        })
    }

    /// Rows of a stored (not aliased) logical tensor, counted over its flattened rows.
    fn read_stored(&self, name: &str, start: usize, out: &mut [f32]) -> Result<()> {
        let t = self
            .logical
            .get(name)
            .ok_or_else(|| Error::MissingWeight(name.to_owned()))?;
        if t.storage == Storage::Dense {
            return decode_rows(&self.source, name, start, out);
        }
        let (_, cols) = t.rows_cols();
        let n = out.len().checked_div(cols).unwrap_or(0);
        let vals = read_logical_rows(&self.source, t, start..start.saturating_add(n))?;
        if vals.len() != out.len() {
            return Err(Error::Decode {
                name: name.to_owned(),
                reason: format!("decoded {} values for {} slots", vals.len(), out.len()),
            });
        }
        out.copy_from_slice(&vals);
        Ok(())
    }

    /// Rows `start ..` of `kv_b_proj` from mlx-lm's `embed_q` / `unembed_out` split.
    fn read_kv_b(&self, a: &Alias, start: usize, out: &mut [f32]) -> Result<()> {
        let Alias::KvB {
            embed_q,
            unembed_out,
            nope,
            v,
            lora,
            ..
        } = a
        else {
            return Ok(());
        };
        let (nope, v, lora) = (*nope, *v, *lora);
        let mut head_k: Option<(usize, Vec<f32>)> = None;
        for (i, row) in out.chunks_exact_mut(lora).enumerate() {
            let r = start + i;
            let (h, j) = (r / (nope + v), r % (nope + v));
            if j < nope {
                if head_k.as_ref().is_none_or(|(hh, _)| *hh != h) {
                    let mut buf = vec![0f32; lora * nope];
                    self.read_stored(embed_q, h * lora, &mut buf)?;
                    head_k = Some((h, buf));
                }
                if let Some((_, k)) = &head_k {
                    for (c, x) in row.iter_mut().enumerate() {
                        *x = k.get(c * nope + j).copied().unwrap_or_default();
                    }
                }
            } else {
                self.read_stored(unembed_out, h * v + (j - nope), row)?;
            }
        }
        Ok(())
    }
}

impl Weights for HfWeights {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn release(&self, name: &str) {
        if !self.release_pages {
            return;
        }
        let stored: Vec<&str> = match self.aliases.get(name) {
            Some(Alias::Expert { stack, .. }) => vec![stack.as_str()],
            Some(Alias::KvB {
                embed_q,
                unembed_out,
                ..
            }) => vec![embed_q.as_str(), unembed_out.as_str()],
            None => vec![name],
        };
        for n in stored {
            if let Some(t) = self.logical.get(n) {
                for part in stored_names(n, &t.storage) {
                    self.source.advise(part, Access::Done);
                }
            }
        }
    }

    fn set_release_pages(&mut self, on: bool) {
        self.release_pages = on;
    }

    /// Dense rows of a type [`crate::qdot`] reads, and DeepSeek's E4M3 blocks with their
    /// scales, as stored (a weight under an mlx-lm alias is decoded instead).
    fn stored_rows(&self, name: &str) -> Option<StoredRows<'_>> {
        if self.aliases.contains_key(name) {
            return None;
        }
        let t = self.logical.get(name)?;
        let [rows, cols] = matrix_shape(&t.meta)?;
        match &t.storage {
            Storage::Dense => {
                crate::qdot::kernel(t.meta.dtype)?;
                let bytes = self.source.bytes(name).ok()?;
                StoredRows::new(t.meta.dtype, bytes, 0, [rows, cols], None)
            }
            Storage::DeepseekFp8 {
                weight,
                scale_inv,
                block,
                format: Fp8Format::E4M3,
            } => {
                let codes = self.source.bytes(weight).ok()?;
                let scales = self.source.bytes(scale_inv).ok()?;
                StoredRows::new(DType::F8E4M3, codes, 0, [rows, cols], None)?
                    .with_block_scales(scales, cols, *block)
            }
            _ => None,
        }
    }

    fn shape(&self, name: &str) -> Option<[usize; 2]> {
        match self.aliases.get(name) {
            Some(a) => Some(a.shape()),
            None => self.logical.get(name).and_then(|t| matrix_shape(&t.meta)),
        }
    }

    fn row_align(&self, name: &str) -> usize {
        let stored = match self.aliases.get(name) {
            Some(Alias::Expert { stack, .. }) => stack.as_str(),
            _ => name,
        };
        self.logical.get(stored).map_or(1, LogicalTensor::row_align)
    }

    fn read_rows(&self, name: &str, start: usize, out: &mut [f32]) -> Result<()> {
        match self.aliases.get(name) {
            None => self.read_stored(name, start, out),
            Some(a @ Alias::KvB { .. }) => {
                let [rows, cols] = a.shape();
                if cols == 0 || start + out.len() / cols > rows || !out.len().is_multiple_of(cols) {
                    return Err(Error::Decode {
                        name: name.to_owned(),
                        reason: "rows out of range".into(),
                    });
                }
                self.read_kv_b(a, start, out)
            }
            Some(Alias::Expert {
                stack,
                first,
                shape: [rows, cols],
            }) => {
                if *cols == 0 || start + out.len() / cols > *rows {
                    return Err(Error::Decode {
                        name: name.to_owned(),
                        reason: "rows out of range".into(),
                    });
                }
                self.read_stored(stack, first + start, out)
            }
        }
    }
}
