//! The whole HF → GGUF conversion: plan once, then write to a temp file and commit.

use std::path::{Path, PathBuf};

use wharf_core::TensorMeta;

use super::storage::QuantizedView;
use super::to_gguf::{GgufOptions, GgufPlan, plan_logical};
use crate::error::{Error, ErrorKind, Result};
use crate::gguf::split::{self, SplitBy};
use crate::open::AnySource;
use crate::pipeline;

/// A planned HF → GGUF conversion of an HF folder, PyTorch folder, or ONNX export opened with
/// its config. Quantized checkpoints (DeepSeek FP8, compressed-tensors, GPTQ, MLX) are read
/// dequantized.
#[derive(Debug)]
pub struct HfToGguf<'a> {
    view: QuantizedView<'a>,
    plan: GgufPlan,
}

impl<'a> HfToGguf<'a> {
    /// Plans the conversion of `src`.
    pub fn new(src: &'a AnySource, opts: &GgufOptions) -> Result<Self> {
        let input = src.hf().ok_or_else(|| {
            Error::new(ErrorKind::Unconvertible(
                "GGUF output needs an HF model: a folder with config.json, or an ONNX export \
                 with --config"
                    .into(),
            ))
        })?;
        let view = QuantizedView::new(input.tensors, Some(input.config))?;
        let plan = plan_logical(&input, &view, opts)?;
        Ok(HfToGguf { view, plan })
    }

    /// The output tensors, in file order.
    pub fn metas(&self) -> Vec<TensorMeta> {
        self.plan.tensors.iter().map(|p| p.meta.clone()).collect()
    }

    /// The plan: metadata and tensors.
    pub fn plan(&self) -> &GgufPlan {
        &self.plan
    }

    /// Writes the GGUF at `out` (or the split set named after it); `progress` gets the index
    /// of each finished tensor. Returns the files written.
    pub fn write(
        &self,
        out: &Path,
        split: Option<SplitBy>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<PathBuf>> {
        let (mut w, files) = split::create(out, &self.plan.kvs, &self.metas(), split, None)?;
        pipeline::run(&self.view, &self.plan.tensors, w.as_mut(), progress)?;
        w.finish().map_err(crate::from_core)?;
        Ok(files)
    }
}
