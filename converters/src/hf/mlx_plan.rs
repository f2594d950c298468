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
use std::ops::Range;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::Elements;
use wharf_quantizers::mlx::{self, MlxParams};

use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::{Encoder, Planned, Slicing, Transform, append_encoded, f32_values, refusal};

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
    /// Which part of which quantized weight each output tensor is.
    parts: BTreeMap<String, (Part, Arc<Job>)>,
    /// What each weight's `biases` (written first) computed for the `scales` and packed
    /// `weight` after it, keyed by the weight's base name.
    kept: Mutex<HashMap<String, Kept>>,
    /// Most scale bytes kept per weight ([`KEEP_SCALES`]).
    keep_scales: usize,
}

/// Scales kept between a weight's `biases` and its `scales`, at most this many bytes (encoded)
/// per weight: above it the scales are computed again. A stack of 256 DeepSeek-V3 experts
/// keeps 117 MB, Kimi-K2's 384 keep 176 MB; the weights of one quantized tensor are 32x that.
const KEEP_SCALES: usize = 256 << 20;

/// The three outputs of one quantized weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Biases,
    Scales,
    Weight,
}

/// One quantized weight: its base name, rows, scale dtype and optional re-layout.
struct Job {
    base: String,
    rows: usize,
    dtype: DType,
    relayout: Option<Relayout>,
}

/// A weight's packed words (little-endian bytes), scales and biases.
#[derive(Default)]
struct Quantized {
    weight: Vec<u8>,
    scales: Vec<f32>,
    biases: Vec<f32>,
}

/// What a weight's `biases` left for its other two tensors: the scales of the rows made so
/// far, encoded (unless too many), and the packed words when one block was the whole weight.
#[derive(Default)]
struct Kept {
    rows: usize,
    scales: Option<Vec<u8>>,
    weight: Option<Vec<u8>>,
}

impl std::fmt::Debug for MlxPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlxPlan")
            .field("tensors", &self.tensors)
            .finish()
    }
}

impl MlxPlan {
    /// Quantizes rows of a weight (re-laid out first where the layout asks: then all of them).
    fn quantize(&self, job: &Job, v: &Elements<'_>) -> std::result::Result<Quantized, String> {
        let relaid = job.relayout.as_ref().map(|r| r(&f32_values(v)));
        let v = relaid.as_deref().map_or(*v, Elements::F32);
        let groups = v.len() / self.params.group();
        let mut q = Quantized {
            weight: vec![0u8; groups * self.params.words_per_group() * 4],
            scales: vec![0f32; groups],
            biases: vec![0f32; groups],
        };
        let out = (&mut q.weight[..], &mut q.scales[..], &mut q.biases[..]);
        mlx::quantize_into(v, self.params, job.dtype, out).map_err(|e| refusal(e, &v))?;
        Ok(q)
    }

    /// Keeps what the `biases` of rows `rows` computed (row blocks arrive in order; row 0
    /// starts over).
    fn keep(
        &self,
        job: &Job,
        rows: &Range<usize>,
        q: Quantized,
    ) -> std::result::Result<(), String> {
        let Ok(mut kept) = self.kept.lock() else {
            return Ok(());
        };
        let k = kept.entry(job.base.clone()).or_default();
        if rows.start == 0 {
            let per = job
                .dtype
                .row_bytes(q.scales.len() as u64)
                .map_err(|e| e.to_string())?;
            let scales = job.rows * per as usize / rows.len().max(1);
            *k = Kept {
                rows: 0,
                scales: (scales <= self.keep_scales).then(Vec::new),
                weight: (rows.len() == job.rows).then(Vec::new),
            };
        }
        if k.rows != rows.start {
            return Ok(());
        }
        k.rows += rows.len();
        if let Some(s) = &mut k.scales {
            append_encoded(job.dtype, &q.scales, s)?;
        }
        if let Some(w) = &mut k.weight {
            w.extend(q.weight);
        }
        Ok(())
    }

    /// Whether `job`'s `part` is kept whole.
    fn complete(&self, job: &Job, part: Part) -> bool {
        let Ok(kept) = self.kept.lock() else {
            return false;
        };
        kept.get(&job.base).is_some_and(|k| {
            k.rows == job.rows
                && match part {
                    Part::Scales => k.scales.is_some(),
                    Part::Weight => k.weight.is_some(),
                    Part::Biases => false,
                }
        })
    }

    /// Takes `job`'s kept scales (encoded) or packed words, forgetting the weight after its
    /// packed words (written last).
    fn take(&self, job: &Job, part: Part) -> Vec<u8> {
        let Ok(mut kept) = self.kept.lock() else {
            return Vec::new();
        };
        let bytes = match (part, kept.get_mut(&job.base)) {
            (Part::Scales, Some(k)) => k.scales.take(),
            (Part::Weight, Some(k)) => k.weight.take(),
            _ => None,
        };
        if part == Part::Weight {
            kept.remove(&job.base);
        }
        bytes.unwrap_or_default()
    }

    /// Drops what was kept for `job`, once its packed words (written last) are made.
    fn forget(&self, job: &Job) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.remove(&job.base);
        }
    }
}

impl Encoder for MlxPlan {
    fn claims(&self, meta: &TensorMeta) -> bool {
        self.parts.contains_key(&meta.name)
    }

    fn slicing(&self, meta: &TensorMeta) -> Slicing {
        match self.parts.get(&meta.name) {
            Some((part, job)) if self.complete(job, *part) => Slicing::Kept,
            Some((_, job)) if job.relayout.is_some() => Slicing::Whole,
            Some(_) => Slicing::Rows(1),
            None => Slicing::Whole,
        }
    }

    /// Writes a quantized weight's biases, scales or packed words for some rows (or the kept
    /// ones).
    fn encode(
        &self,
        meta: &TensorMeta,
        rows: Range<usize>,
        v: Option<&Elements<'_>>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        let (part, job) = self
            .parts
            .get(&meta.name)
            .ok_or_else(|| format!("no MLX job for `{}`", meta.name))?;
        let Some(v) = v else {
            let mut kept = self.take(job, *part);
            match out.is_empty() {
                true => std::mem::swap(out, &mut kept), // handed on as it is, not copied
                false => out.append(&mut kept),
            }
            return Ok(());
        };
        let mut q = self.quantize(job, v)?;
        match part {
            Part::Weight => {
                out.append(&mut q.weight);
                if rows.end == job.rows {
                    self.forget(job); // the last block of the packed words: nothing is kept
                }
            }
            Part::Scales => append_encoded(job.dtype, &q.scales, out)?,
            Part::Biases => {
                append_encoded(job.dtype, &q.biases, out)?;
                self.keep(job, &rows, q)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl MlxPlan {
    /// Keeps at most `bytes` of scales per weight (0: every weight made in several row blocks
    /// computes its scales again).
    pub(crate) fn keep_scales_at_most(&mut self, bytes: usize) {
        self.keep_scales = bytes;
    }
}

impl MlxPlan {
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

/// Whether `name` belongs to a layer past `num_hidden_layers`: DeepSeek's multi-token
/// prediction module (`model.layers.61.*` of V3/R1), which mlx-lm's `sanitize` drops.
pub(crate) fn beyond_depth(name: &str, config: &Value) -> bool {
    let depth = config.get("num_hidden_layers").and_then(Value::as_u64);
    let layer = name
        .strip_prefix("model.layers.")
        .and_then(|r| r.split('.').next())
        .and_then(|l| l.parse::<u64>().ok());
    matches!((layer, depth), (Some(l), Some(d)) if l >= d)
}

/// The logical weights of the MLX layout: DeepSeek's experts stacked and `kv_b_proj` split,
/// layers past the model's depth (MTP) left out.
fn logical_weights(src: &dyn TensorSource, config: &Value) -> Result<Vec<Logical>> {
    let deepseek = matches!(
        config.get("model_type").and_then(Value::as_str),
        Some("deepseek_v3" | "deepseek_v2")
    );
    let mut out = Vec::new();
    for m in src
        .tensors()
        .iter()
        .filter(|m| !beyond_depth(&m.name, config))
    {
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

/// Only the relayout (a plain copy never needs a transform).
fn relayout_only(relayout: Option<Relayout>) -> Option<Transform> {
    relayout.map(|r| Box::new(move |v: &[f32]| r(v)) as Transform)
}

/// Plans an MLX folder from `src` (a logical view; quantized inputs already dequantized).
pub fn plan_mlx(src: &dyn TensorSource, config: &Value, params: MlxParams) -> Result<MlxPlan> {
    let mut tensors = Vec::new();
    let mut parameters = 0u64;
    let mut parts = BTreeMap::new();
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
        let job = Arc::new(Job {
            base: base.clone(),
            rows: l.shape.iter().rev().skip(1).product::<u64>() as usize,
            dtype: sd,
            relayout: l.relayout,
        });
        let outputs = [
            (format!("{base}.biases"), sd, grouped.clone(), Part::Biases),
            (format!("{base}.scales"), sd, grouped, Part::Scales),
            (l.name, DType::U32, packed, Part::Weight),
        ];
        for (name, dtype, shape, part) in outputs {
            parts.insert(name.clone(), (part, Arc::clone(&job)));
            tensors.push(Planned {
                meta: TensorMeta::new(name, dtype, shape),
                from: l.from.clone(),
                transform: None,
            });
        }
    }
    tensors.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    Ok(MlxPlan {
        tensors,
        config: output_config(config, params),
        parameters,
        params,
        parts,
        kept: Mutex::default(),
        keep_scales: KEEP_SCALES,
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
