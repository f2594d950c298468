//! GGUF output as llama-quantize writes it: the converter's plan for an HF folder (or a float
//! GGUF's tensors as they are), tensors in llama.cpp's loader order (`src/llama-quant.cpp`,
//! `llama-model-loader.h` `weight_name_comparer`), per-tensor types from the mix rules, and
//! each tensor quantized as it streams out.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use wharf_converters::AnySource;
use wharf_converters::gguf::Value;
use wharf_converters::gguf::split::{self, SplitBy};
use wharf_converters::hf::storage::QuantizedView;
use wharf_converters::hf::{GgufOptions, OutType, plan_gguf, plan_gguf_logical};
use wharf_converters::imatrix::Imatrix;
use wharf_converters::pipeline::{self, Planned};
use wharf_converters::safetensors::TapFactory;
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::ggml::mix::{
    Mix, MixOptions, ModelFacts, allows_quantization, choose_types, requires_imatrix,
};

use crate::{Error, Progress, Result};

/// GGUF metadata in file order.
pub type Kvs = Vec<(String, Value)>;

/// A planned GGUF: metadata and every tensor with its output type, in file order.
pub struct GgufJob<'a> {
    /// Metadata, with `general.file_type` and `general.quantization_version` set last.
    pub kvs: Kvs,
    /// Tensors in loader order with their chosen types.
    pub plan: Vec<Planned>,
    /// The logical view planned tensors are read through (quantized HF folders).
    view: Option<QuantizedView<'a>>,
    /// Importances per output tensor (`n_per_row * n_expert` values), for those that have one.
    importance: BTreeMap<String, Vec<f32>>,
    /// Source values per row block ([`pipeline::BLOCK_VALUES`]).
    block_values: usize,
    /// Written as a split set (`llama-gguf-split --split`) rather than one file.
    split: Option<SplitBy>,
}

/// What llama-quantize takes beyond the mix and the type options.
#[derive(Debug, Default, Clone, Copy)]
pub struct Extras<'i> {
    /// `--imatrix`: the loaded matrix and the file name as given, which llama-quantize records
    /// in `quantize.imatrix.file`.
    pub imatrix: Option<(&'i Imatrix, &'i str)>,
    /// `--allow-requantize`: a quantized GGUF source is dequantized and quantized again.
    pub allow_requantize: bool,
}

impl std::fmt::Debug for GgufJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufJob")
            .field("tensors", &self.plan.len())
            .finish_non_exhaustive()
    }
}

impl GgufJob<'_> {
    /// Makes tensors in row blocks of about `values` source values: the same bytes at any size
    /// (tests cut every tensor, and every expert, into many blocks).
    pub fn in_blocks_of(mut self, values: usize) -> Self {
        self.block_values = values;
        self
    }

    /// Writes llama.cpp's split layout, cut `by` size or tensor count (`None`: one file).
    pub fn split_by(mut self, by: Option<SplitBy>) -> Self {
        self.split = by;
        self
    }

    /// The files [`write`] writes for `out`, the first one first.
    pub fn files(&self, out: &Path) -> Result<Vec<std::path::PathBuf>> {
        let Some(by) = self.split else {
            return Ok(vec![out.to_path_buf()]);
        };
        let n = split::plan(&self.metas(), by)?.len();
        let prefix = split::prefix_of(out);
        Ok((0..n).map(|i| split::split_path(&prefix, i, n)).collect())
    }

    /// The output tensors.
    pub fn metas(&self) -> Vec<TensorMeta> {
        self.plan.iter().map(|p| p.meta.clone()).collect()
    }
}

/// Plans `src` quantized with `mix` under `opts`.
pub fn plan<'a>(src: &'a AnySource, mix: Mix, opts: &MixOptions) -> Result<GgufJob<'a>> {
    plan_with(src, mix, opts, Extras::default())
}

/// [`plan`] with an importance matrix and/or requantizing. `opts.imatrix` is set from `extras`.
pub fn plan_with<'a>(
    src: &'a AnySource,
    mix: Mix,
    opts: &MixOptions,
    extras: Extras<'_>,
) -> Result<GgufJob<'a>> {
    let (kvs, mut plan, view) = base_plan(src)?;
    plan.sort_by(|a, b| loader_order(&a.meta.name, &b.meta.name));
    let facts = facts(&kvs);
    let shapes: Vec<(String, Vec<u64>)> = plan
        .iter()
        .map(|p| (p.meta.name.clone(), p.meta.shape.dims().to_vec()))
        .collect();
    let opts = MixOptions {
        imatrix: extras.imatrix.is_some(),
        ..opts.clone()
    };
    let types = choose_types(mix, &opts, &facts, &shapes);
    let mut importance = BTreeMap::new();
    for ((p, t), (name, shape)) in plan.iter_mut().zip(types).zip(&shapes) {
        // What llama-quantize would read: the source's type for a GGUF, F32 for a conversion.
        let current = match src {
            AnySource::Gguf(g) => g.meta(name).map_or(DType::F32, |m| m.dtype),
            _ => DType::F32,
        };
        let keep = !allows_quantization(&opts, &facts.arch, name, shape);
        p.meta.dtype = if keep { current } else { t };
        if p.meta.dtype == current {
            continue; // copied as it is, as llama-quantize does
        }
        if current.is_ggml_block() && !extras.allow_requantize {
            return Err(Error::Unsupported(format!(
                "tensor `{name}` is already {current}: requantizing from type {current} is disabled (pass --allow-requantize)"
            )));
        }
        let found = match extras.imatrix {
            Some((m, _)) => importance_for(m, name, shape)?,
            None => None,
        };
        match found {
            Some(v) => {
                importance.insert(name.clone(), v);
            }
            None if requires_imatrix(name, p.meta.dtype) => {
                return Err(Error::Unsupported(format!(
                    "tensor `{name}`: {} needs an importance matrix entry (--imatrix)",
                    p.meta.dtype
                )));
            }
            None => {}
        }
    }
    let mut kvs = quantized_kvs(kvs, mix.file_type());
    if let Some((m, file)) = extras.imatrix {
        imatrix_kvs(&mut kvs, m, file);
    }
    Ok(GgufJob {
        kvs,
        plan,
        view,
        importance,
        block_values: pipeline::BLOCK_VALUES,
        split: None,
    })
}

/// The entry for `name` if it has one of the right size (`n_per_row * n_expert`); a wrong size
/// is an error except for the token embeddings, as in `llama_model_quantize_impl`.
fn importance_for(m: &Imatrix, name: &str, shape: &[u64]) -> Result<Option<Vec<f32>>> {
    let Some(v) = m.entries.get(name) else {
        return Ok(None);
    };
    let experts = if shape.len() >= 3 { shape[0] } else { 1 };
    let want = shape.last().copied().unwrap_or(0).saturating_mul(experts);
    if v.len() as u64 == want {
        return Ok(Some(v.clone()));
    }
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        return Ok(None);
    }
    Err(Error::Unsupported(format!(
        "imatrix size {} is different from tensor size {want} for `{name}`",
        v.len()
    )))
}

/// The keys `tools/quantize/quantize.cpp` adds as KV overrides, which `llama-quant.cpp` sets
/// after the copied metadata, `general.quantization_version` and `general.file_type` (a re-set
/// key moves to the end; integers are written as u32, strings cut to 127 bytes).
fn imatrix_kvs(kvs: &mut Kvs, m: &Imatrix, file: &str) {
    let cut = |s: &str| {
        let mut end = s.len().min(127);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Value::String(s[..end].to_owned())
    };
    let mut set = |k: &str, v: Value| {
        kvs.retain(|(key, _)| key != k);
        kvs.push((k.to_owned(), v));
    };
    set("quantize.imatrix.file", cut(file));
    if let Some(d) = m.datasets.first() {
        set("quantize.imatrix.dataset", cut(d));
    }
    let entries = u32::try_from(m.entries.len()).unwrap_or(u32::MAX);
    set("quantize.imatrix.entries_count", Value::U32(entries));
    if m.chunk_count > 0 {
        set("quantize.imatrix.chunks_count", Value::U32(m.chunk_count));
    }
}

/// Streams the planned GGUF to `out` (atomically; a split set named after it when the job is
/// split), feeding every file's bytes to the tap `taps` gives for its name and reporting each
/// finished tensor to `progress`. Returns the files written, the first one first.
pub fn write(
    src: &AnySource,
    job: &GgufJob<'_>,
    out: &Path,
    taps: Option<TapFactory>,
    progress: Progress<'_>,
) -> Result<Vec<std::path::PathBuf>> {
    let metas = job.metas();
    let (mut w, files) = split::create(out, &job.kvs, &metas, job.split, taps)?;
    let encode = |m: &TensorMeta, rows: Range<usize>, v: &[f32], out: &mut [u8]| {
        let n_per_row = m.shape.row_len() as usize;
        let quantize = |x: &[f32], w: Option<&[f32]>, y: &mut [u8]| {
            wharf_quantizers::ggml::quantize(m.dtype, x, n_per_row, w, y).map_err(|e| e.to_string())
        };
        let Some(im) = job.importance.get(&m.name) else {
            return quantize(v, None, out);
        };
        // One importance slice per expert (`imatrix_for_row` in llama-quant.cpp): the rows of
        // each expert in this block with that expert's slice.
        let experts = (im.len() / n_per_row.max(1)).max(1);
        let per_expert = (m.shape.rows().unwrap_or(0) as usize / experts).max(1);
        let row_bytes = out.len() / rows.len().max(1);
        let (mut at, mut done) = (rows.start, 0usize);
        while at < rows.end {
            let e = at / per_expert;
            let end = rows.end.min((e + 1) * per_expert);
            let n = end - at;
            let w = im.get(e * n_per_row..(e + 1) * n_per_row);
            let x = &v[done * n_per_row..(done + n) * n_per_row];
            quantize(x, w, &mut out[done * row_bytes..(done + n) * row_bytes])?;
            (at, done) = (end, done + n);
        }
        Ok(())
    };
    let input: &dyn TensorSource = match &job.view {
        Some(v) => v,
        None => src,
    };
    let mut step = crate::steps(&metas, progress);
    let values = job.block_values;
    pipeline::run_in_blocks(
        input,
        &job.plan,
        w.as_mut(),
        &mut step,
        Some(&encode),
        values,
    )?;
    w.finish().map_err(wharf_converters::from_core)?;
    Ok(files)
}

/// The converter's F32 plan for an HF folder (read through its logical view when it is
/// quantized), or the tensors of a float GGUF as they are.
fn base_plan(src: &AnySource) -> Result<(Kvs, Vec<Planned>, Option<QuantizedView<'_>>)> {
    if let Some(input) = src.hf() {
        let opts = GgufOptions {
            out: OutType::F32,
            pre: None,
        };
        let view = QuantizedView::new(input.tensors, Some(input.config))?;
        if view.is_quantized() {
            let p = plan_gguf_logical(&input, &view, &opts)?;
            return Ok((p.kvs, p.tensors, Some(view)));
        }
        let p = plan_gguf(&input, &opts)?;
        return Ok((p.kvs, p.tensors, None));
    }
    match src {
        AnySource::Gguf(g) => {
            let plan = g
                .tensors()
                .iter()
                .map(|m| {
                    if !(m.dtype.is_float() || wharf_quantizers::ggml::can_dequantize(m.dtype)) {
                        return Err(Error::Unsupported(format!(
                            "tensor `{}` is {}, which wharf cannot dequantize",
                            m.name, m.dtype
                        )));
                    }
                    Ok(Planned::simple(
                        TensorMeta::new(m.name.clone(), DType::F32, m.shape.clone()),
                        m.name.clone(),
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((g.kvs().to_vec(), plan, None))
        }
        _ => Err(Error::Unsupported(
            "GGUF output needs an HF model (a folder with config.json, or an ONNX export with \
             its config) or a GGUF file"
                .into(),
        )),
    }
}

/// llama.cpp's loader order: tensors outside blocks first, then by block index, then by name.
fn loader_order(a: &str, b: &str) -> std::cmp::Ordering {
    let layer = |n: &str| -> i64 {
        n.strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|l| l.parse().ok())
            .unwrap_or(-1)
    };
    (layer(a), a).cmp(&(layer(b), b))
}

fn facts(kvs: &[(String, Value)]) -> ModelFacts {
    let get = |k: &str| kvs.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let arch = get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or("llama")
        .to_owned();
    let num = |k: &str| {
        get(&format!("{arch}.{k}"))
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0)
    };
    ModelFacts {
        n_layer: num("block_count"),
        n_head: num("attention.head_count"),
        n_head_kv: num("attention.head_count_kv"),
        n_expert: num("expert_count"),
        // llama.cpp derives this from the 70B size class; the 80-layer family is its only member.
        is_70b: num("block_count") == 80 && arch == "llama",
        arch,
    }
}

/// llama-quantize copies the input metadata and re-sets these two keys (gguf.cpp moves a
/// re-set key to the end).
fn quantized_kvs(mut kvs: Kvs, file_type: u32) -> Kvs {
    kvs.retain(|(k, _)| {
        k != "general.quantization_version" && k != "general.file_type" && !k.starts_with("split.")
    });
    kvs.push(("general.quantization_version".into(), Value::U32(2)));
    kvs.push(("general.file_type".into(), Value::U32(file_type)));
    kvs
}
