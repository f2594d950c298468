//! GGUF output as llama-quantize writes it: the converter's plan for an HF folder (or a float
//! GGUF's tensors as they are), tensors in llama.cpp's loader order (`src/llama-quant.cpp`,
//! `llama-model-loader.h` `weight_name_comparer`), per-tensor types from the mix rules, and
//! each tensor quantized as it streams out.

use std::path::Path;

use wharf_converters::AnySource;
use wharf_converters::atomic::Tap;
use wharf_converters::gguf::{GgufWriter, Value};
use wharf_converters::hf::storage::QuantizedView;
use wharf_converters::hf::{GgufOptions, OutType, plan_gguf, plan_gguf_logical};
use wharf_converters::pipeline::{self, Planned};
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::ggml::mix::{Mix, MixOptions, ModelFacts, choose_types};

use crate::{Error, Result};

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
}

impl std::fmt::Debug for GgufJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufJob")
            .field("tensors", &self.plan.len())
            .finish_non_exhaustive()
    }
}

impl GgufJob<'_> {
    /// The output tensors.
    pub fn metas(&self) -> Vec<TensorMeta> {
        self.plan.iter().map(|p| p.meta.clone()).collect()
    }
}

/// Plans `src` quantized with `mix` under `opts`.
pub fn plan<'a>(src: &'a AnySource, mix: Mix, opts: &MixOptions) -> Result<GgufJob<'a>> {
    let (kvs, mut plan, view) = base_plan(src)?;
    plan.sort_by(|a, b| loader_order(&a.meta.name, &b.meta.name));
    let facts = facts(&kvs);
    let shapes: Vec<(String, Vec<u64>)> = plan
        .iter()
        .map(|p| (p.meta.name.clone(), p.meta.shape.dims().to_vec()))
        .collect();
    let types = choose_types(mix, opts, &facts, &shapes);
    for (p, t) in plan.iter_mut().zip(types) {
        p.meta.dtype = t;
    }
    Ok(GgufJob {
        kvs: quantized_kvs(kvs, mix.file_type()),
        plan,
        view,
    })
}

/// Streams the planned GGUF to `out` (atomically), feeding every byte to `tap`.
pub fn write(src: &AnySource, job: &GgufJob<'_>, out: &Path, tap: Option<Tap>) -> Result<()> {
    let metas = job.metas();
    let mut w = GgufWriter::create(out, &job.kvs, &metas, tap)?;
    let encode = |m: &TensorMeta, v: &[f32], out: &mut [u8]| {
        wharf_quantizers::ggml::quantize(m.dtype, v, m.shape.row_len() as usize, None, out)
            .map_err(|e| e.to_string())
    };
    let input: &dyn TensorSource = match &job.view {
        Some(v) => v,
        None => src,
    };
    pipeline::run_with(input, &job.plan, &mut w, &mut |_| {}, Some(&encode))?;
    w.commit()?;
    Ok(())
}

/// The converter's F32 plan for an HF folder (read through its logical view when it is
/// quantized), or the tensors of a float GGUF as they are.
fn base_plan(src: &AnySource) -> Result<(Kvs, Vec<Planned>, Option<QuantizedView<'_>>)> {
    match src {
        AnySource::Safetensors {
            source,
            dir: Some(dir),
            config: Some((config, spec)),
        } => {
            let opts = GgufOptions {
                out: OutType::F32,
                pre: None,
            };
            let view = QuantizedView::new(source, Some(config))?;
            if view.is_quantized() {
                let p = plan_gguf_logical(source, &view, dir, config, spec, &opts)?;
                return Ok((p.kvs, p.tensors, Some(view)));
            }
            let p = plan_gguf(source, dir, config, spec, &opts)?;
            Ok((p.kvs, p.tensors, None))
        }
        AnySource::Gguf(g) => {
            let plan = g
                .tensors()
                .iter()
                .map(|m| {
                    if !m.dtype.is_float() {
                        return Err(Error::Unsupported(format!(
                            "tensor `{}` is already {}; requantizing is not supported yet",
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
            "GGUF output needs an HF folder with config.json or a GGUF file".into(),
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
