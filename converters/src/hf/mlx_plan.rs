//! Plans for MLX affine-quantized folders, as `mlx_lm.convert -q` writes them.
//!
//! Sources: mlx-lm `utils.py` (`quantize_model`: a module is quantized when it has
//! `to_quantized` and `weight.shape[-1] % group_size == 0`; `save_model`: metadata
//! `{"format": "mlx"}`, index with `total_size` / `total_parameters`, indent 4), mlx-lm
//! `models/deepseek_v3.py` `sanitize` (routed experts stacked into `switch_mlp.*` and
//! `kv_b_proj` split into `embed_q` = W_k transposed per head and `unembed_out` = W_v per head;
//! the router `mlp.gate` is a plain module, not a Linear, so it stays dense). Layout of each
//! quantized tensor: `design/FORMATS.md` b5.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::mlx::{self, MlxParams, MlxQuantized};

use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::{Planned, Transform};

/// Re-lays one logical weight out of its source values (stacking is done by concatenation).
type Relayout = std::sync::Arc<dyn Fn(&[f32]) -> Vec<f32> + Send + Sync>;

/// One output weight before quantization: name, shape, sources, optional re-layout.
struct Logical {
    name: String,
    shape: Vec<u64>,
    dtype: DType,
    from: Vec<String>,
    relayout: Option<Relayout>,
}

/// Output tensors of an MLX folder and the encoder state for the packed weights.
pub struct MlxPlan {
    /// Output tensors, sorted by name as mlx-lm's files are.
    pub tensors: Vec<Planned>,
    /// config.json with `quantization` and `quantization_config`.
    pub config: Value,
    /// Logical parameter count (`total_parameters` of the index).
    pub parameters: u64,
    params: MlxParams,
    /// One quantization per weight, shared by its `biases`, `scales` and packed `weight`
    /// (written in that order), keyed by the weight's base name.
    cache: QuantCache,
}

type QuantCache = Arc<Mutex<HashMap<String, MlxQuantized>>>;

/// The quantization of `base` (values `v`), computed by the first of its three tensors.
fn with_cached<T>(
    cache: &QuantCache,
    base: &str,
    compute: impl FnOnce() -> Option<MlxQuantized>,
    take: impl FnOnce(&mut MlxQuantized) -> T,
) -> Option<T> {
    let mut c = cache.lock().ok()?;
    if !c.contains_key(base) {
        c.insert(base.to_owned(), compute()?);
    }
    c.get_mut(base).map(take)
}

impl std::fmt::Debug for MlxPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlxPlan")
            .field("tensors", &self.tensors)
            .finish()
    }
}

impl MlxPlan {
    /// The pipeline encoder hook: packs a planned U32 weight.
    pub fn encode(
        &self,
        meta: &TensorMeta,
        v: &[f32],
        out: &mut [u8],
    ) -> std::result::Result<(), String> {
        let base = meta.name.strip_suffix(".weight").unwrap_or(&meta.name);
        let cached = self.cache.lock().ok().and_then(|mut c| c.remove(base));
        let q = match cached {
            Some(q) => q,
            // Codes do not depend on the scales' storage dtype.
            None => mlx::quantize(v, self.params, DType::F32).map_err(|e| e.to_string())?,
        };
        if q.weight.len() * 4 != out.len() {
            return Err(format!(
                "`{}`: {} words for {} bytes",
                meta.name,
                q.weight.len(),
                out.len()
            ));
        }
        for (o, w) in out.chunks_exact_mut(4).zip(&q.weight) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        Ok(())
    }

    /// `model.safetensors.index.json` as mlx-lm writes it.
    pub fn index_json(&self, shards: &[(String, Vec<TensorMeta>)]) -> Result<String> {
        let mut map = BTreeMap::new();
        let mut total = 0u64;
        for (file, metas) in shards {
            for m in metas {
                total += m.nbytes()?;
                map.insert(m.name.clone(), file.clone());
            }
        }
        let v = json!({"metadata": {"total_size": total, "total_parameters": self.parameters},
            "weight_map": map});
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        serde::Serialize::serialize(&v, &mut ser)
            .map_err(|e| Error::new(ErrorKind::Unconvertible(e.to_string())))?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

fn cfg_usize(config: &Value, key: &str) -> Result<usize> {
    config
        .get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| {
            Error::new(ErrorKind::Config(format!(
                "`{key}` missing for the MLX layout"
            )))
        })
}

/// The logical weights of the MLX layout: DeepSeek's experts stacked and `kv_b_proj` split.
fn logical_weights(src: &dyn TensorSource, config: &Value) -> Result<Vec<Logical>> {
    let deepseek = matches!(
        config.get("model_type").and_then(Value::as_str),
        Some("deepseek_v3" | "deepseek_v2")
    );
    let mut out = Vec::new();
    for m in src.tensors() {
        let one = |name: String| Logical {
            name,
            shape: m.shape.dims().to_vec(),
            dtype: m.dtype,
            from: vec![m.name.clone()],
            relayout: None,
        };
        if deepseek && let Some((prefix, rest)) = m.name.split_once(".mlp.experts.") {
            let Some((e, proj)) = rest.split_once('.') else {
                continue;
            };
            if e == "0" {
                let n = cfg_usize(config, "n_routed_experts")?;
                let from = (0..n)
                    .map(|i| format!("{prefix}.mlp.experts.{i}.{proj}"))
                    .collect();
                let mut shape = vec![n as u64];
                shape.extend(m.shape.dims());
                let name = format!("{prefix}.mlp.switch_mlp.{proj}");
                out.push(Logical {
                    name,
                    shape,
                    dtype: m.dtype,
                    from,
                    relayout: None,
                });
            }
            continue;
        }
        if deepseek && let Some(prefix) = m.name.strip_suffix(".self_attn.kv_b_proj.weight") {
            out.extend(split_kv_b(m, prefix, config)?);
            continue;
        }
        out.push(one(m.name.clone()));
    }
    Ok(out)
}

/// `kv_b_proj [heads*(nope+v), lora]` -> `embed_q [heads, lora, nope]`, `unembed_out [heads, v, lora]`.
fn split_kv_b(m: &TensorMeta, prefix: &str, config: &Value) -> Result<Vec<Logical>> {
    let heads = cfg_usize(config, "num_attention_heads")?;
    let nope = cfg_usize(config, "qk_nope_head_dim")?;
    let vd = cfg_usize(config, "v_head_dim")?;
    let lora = cfg_usize(config, "kv_lora_rank")?;
    if m.shape.dims() != [(heads * (nope + vd)) as u64, lora as u64] {
        return Err(Error::new(ErrorKind::Unconvertible(format!(
            "kv_b_proj shape {:?} does not match the config",
            m.shape.dims()
        )))
        .in_tensor(&m.name));
    }
    let per = nope + vd;
    let k: Relayout = std::sync::Arc::new(move |w: &[f32]| {
        let mut o = Vec::with_capacity(heads * lora * nope);
        for h in 0..heads {
            for c in 0..lora {
                o.extend((0..nope).map(|r| w[(h * per + r) * lora + c]));
            }
        }
        o
    });
    let v: Relayout = std::sync::Arc::new(move |w: &[f32]| {
        (0..heads)
            .flat_map(|h| w[(h * per + nope) * lora..(h + 1) * per * lora].to_vec())
            .collect()
    });
    let mk = |name: &str, shape: [usize; 3], f: Relayout| Logical {
        name: format!("{prefix}.self_attn.{name}.weight"),
        shape: shape.iter().map(|&d| d as u64).collect(),
        dtype: m.dtype,
        from: vec![m.name.clone()],
        relayout: Some(f),
    };
    Ok(vec![
        mk("embed_q", [heads, lora, nope], k),
        mk("unembed_out", [heads, vd, lora], v),
    ])
}

/// Whether mlx-lm quantizes this weight: a Linear/Embedding/SwitchLinear/MultiLinear weight
/// (matrix or stack, float, not the MoE router) whose rows split into whole groups.
fn quantizes(l: &Logical, params: MlxParams) -> bool {
    l.name.ends_with(".weight")
        && l.shape.len() >= 2
        && l.dtype.is_float()
        && !l.name.ends_with(".mlp.gate.weight")
        && l.shape
            .last()
            .is_some_and(|&c| c % params.group() as u64 == 0)
}

fn transform(
    relayout: Option<Relayout>,
    then: impl Fn(&[f32]) -> Vec<f32> + Send + Sync + 'static,
) -> Transform {
    Box::new(move |v: &[f32]| match &relayout {
        Some(r) => then(&r(v)),
        None => then(v),
    })
}

/// Only the relayout (a plain copy never needs a transform).
fn relayout_only(relayout: Option<Relayout>) -> Option<Transform> {
    relayout.map(|r| Box::new(move |v: &[f32]| r(v)) as Transform)
}

/// Plans an MLX folder from `src` (a logical view; quantized inputs already dequantized).
pub fn plan_mlx(src: &dyn TensorSource, config: &Value, params: MlxParams) -> Result<MlxPlan> {
    let mut tensors = Vec::new();
    let mut parameters = 0u64;
    let cache = QuantCache::default();
    for l in logical_weights(src, config)? {
        parameters += l.shape.iter().product::<u64>();
        if !quantizes(&l, params) {
            let meta = TensorMeta::new(l.name.clone(), l.dtype, l.shape.clone());
            let t = relayout_only(l.relayout);
            tensors.push(Planned {
                meta,
                from: l.from,
                transform: t,
            });
            continue;
        }
        let base = l.name.strip_suffix(".weight").unwrap_or(&l.name).to_owned();
        let mut packed = l.shape.clone();
        let cols = packed.pop().unwrap_or(0);
        let mut grouped = packed.clone();
        packed.push(cols * u64::from(params.bits()) / 32);
        grouped.push(cols / params.group() as u64);
        let sd = l.dtype;
        let part = |scales: bool| {
            let (cache, base) = (Arc::clone(&cache), base.clone());
            move |v: &[f32]| {
                let compute = || mlx::quantize(v, params, sd).ok();
                let take = |q: &mut MlxQuantized| match scales {
                    true => std::mem::take(&mut q.scales),
                    false => std::mem::take(&mut q.biases),
                };
                with_cached(&cache, &base, compute, take).unwrap_or_default()
            }
        };
        tensors.push(Planned {
            meta: TensorMeta::new(format!("{base}.biases"), sd, grouped.clone()),
            from: l.from.clone(),
            transform: Some(transform(l.relayout.clone(), part(false))),
        });
        tensors.push(Planned {
            meta: TensorMeta::new(format!("{base}.scales"), sd, grouped),
            from: l.from.clone(),
            transform: Some(transform(l.relayout.clone(), part(true))),
        });
        tensors.push(Planned {
            meta: TensorMeta::new(l.name, DType::U32, packed),
            from: l.from,
            transform: relayout_only(l.relayout),
        });
    }
    tensors.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    Ok(MlxPlan {
        tensors,
        config: output_config(config, params),
        parameters,
        params,
        cache,
    })
}

/// The source config with `quantization` and `quantization_config` (mlx-lm #957 duplicates it).
fn output_config(config: &Value, params: MlxParams) -> Value {
    let mut c = config.clone();
    let q = json!({"group_size": params.group(), "bits": params.bits(), "mode": "affine"});
    if let Some(o) = c.as_object_mut() {
        o.shift_remove("quantization_config");
        o.insert("quantization".into(), q.clone());
        o.insert("quantization_config".into(), q);
    }
    c
}
