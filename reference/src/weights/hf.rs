//! Weights of an HF folder: the logical names are the HF names. Dense tensors (F32/F16/BF16)
//! are decoded directly; quantized storages (DeepSeek / compressed-tensors FP8, INT4
//! pack-quantized, GPTQ, MLX affine) are recognised once by `converters::hf::storage` and
//! dequantized row range by row range.

use std::collections::HashMap;

use wharf_converters::AnySource;
use wharf_converters::hf::storage::{LogicalTensor, QuantizedView, Storage, read_logical_rows};
use wharf_core::model::ModelSpec;

use super::{Weights, decode_rows, matrix_shape};
use crate::{Error, Result};

/// An HF checkpoint read in place.
#[derive(Debug)]
pub struct HfWeights {
    source: AnySource,
    spec: ModelSpec,
    /// Every logical tensor and how it is stored.
    logical: HashMap<String, LogicalTensor>,
}

impl HfWeights {
    /// Wraps an opened source, its `config.json` (for quantization parameters) and the
    /// description of the model it holds.
    pub fn new(
        source: AnySource,
        config: Option<&serde_json::Value>,
        spec: ModelSpec,
    ) -> Result<Self> {
        let logical = QuantizedView::new(&source, config)?
            .logical()
            .iter()
            .map(|t| (t.meta.name.clone(), t.clone()))
            .collect();
        Ok(HfWeights {
            source,
            spec,
            logical,
        })
    }
}

impl Weights for HfWeights {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn shape(&self, name: &str) -> Option<[usize; 2]> {
        self.logical.get(name).and_then(|t| matrix_shape(&t.meta))
    }

    fn read_rows(&self, name: &str, start: usize, out: &mut [f32]) -> Result<()> {
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
}
