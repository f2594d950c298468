//! HF folder → GGUF, as llama.cpp's `convert_hf_to_gguf.py` does it: tensor names, the Q/K row
//! permutation for llama-family rope, `rope_freqs.weight` for llama3 rope, no `output.weight`
//! when embeddings are tied, DeepSeek's `kv_b_proj` split into `attn_k_b` (transposed) and
//! `attn_v_b`, and routed experts stacked into `ffn_*_exps` (`conversion/llama.py`,
//! `conversion/deepseek.py`, gguf-py `tensor_mapping.py`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;
use wharf_core::model::{Architecture, ModelSpec, RopeScaling};
use wharf_core::{DType, Shape, TensorMeta, TensorSource};

use super::keys::{arch_kvs, count_notation};
use super::transforms::{kv_b_part, llama3_rope_factors, permute_rows};
use super::vocab::tokenizer_kvs;
use crate::error::{Error, ErrorKind, Result};
use crate::gguf::Value;
use crate::open::HfInput;
use crate::pipeline::Planned;

/// Storage of the converted weights (`convert_hf_to_gguf.py --outtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutType {
    /// Every tensor F32.
    F32,
    /// 2-D and larger weights F16; norms, biases, router F32.
    F16,
    /// 2-D and larger weights BF16; norms, biases, router F32.
    BF16,
    /// Each weight keeps its source float type.
    Keep,
}

/// Options of the HF → GGUF conversion.
#[derive(Debug, Clone)]
pub struct GgufOptions {
    /// Output storage.
    pub out: OutType,
    /// Overrides `tokenizer.ggml.pre`.
    pub pre: Option<String>,
}

/// The conversion plan: metadata and every output tensor in order.
#[derive(Debug)]
pub struct GgufPlan {
    /// Metadata, in order.
    pub kvs: Vec<(String, Value)>,
    /// Output tensors, in order.
    pub tensors: Vec<Planned>,
}

/// What one HF tensor becomes.
enum Role {
    Skip,
    Plain(String),
    Permute(String, u64),
    Expert {
        layer: u64,
        expert: u64,
        proj: &'static str,
    },
    KvB(u64),
}

fn unknown(name: &str) -> Error {
    Error::new(ErrorKind::Unconvertible(format!(
        "cannot map tensor `{name}` to a llama.cpp name"
    )))
    .in_tensor(name)
}

fn role(name: &str, spec: &ModelSpec) -> Result<Role> {
    let permute = matches!(spec.arch, Architecture::Llama | Architecture::Mistral);
    match name {
        "model.embed_tokens.weight" => return Ok(Role::Plain("token_embd.weight".into())),
        "model.norm.weight" => return Ok(Role::Plain("output_norm.weight".into())),
        "lm_head.weight" if spec.tie_word_embeddings => return Ok(Role::Skip),
        "lm_head.weight" => return Ok(Role::Plain("output.weight".into())),
        _ => {}
    }
    let rest = name
        .strip_prefix("model.layers.")
        .ok_or_else(|| unknown(name))?;
    let (bid, tail) = rest.split_once('.').ok_or_else(|| unknown(name))?;
    let bid: u64 = bid.parse().map_err(|_| unknown(name))?;
    if bid >= spec.num_layers || tail.ends_with("rotary_emb.inv_freq") {
        return Ok(Role::Skip); // DeepSeek MTP layers and cached rope tables
    }
    if let Some(e) = tail.strip_prefix("mlp.experts.") {
        let (expert, proj) = e.split_once('.').ok_or_else(|| unknown(name))?;
        let proj = ["gate_proj.weight", "up_proj.weight", "down_proj.weight"]
            .into_iter()
            .find(|p| *p == proj)
            .ok_or_else(|| unknown(name))?;
        return Ok(Role::Expert {
            layer: bid,
            expert: expert.parse().map_err(|_| unknown(name))?,
            proj,
        });
    }
    if tail == "self_attn.kv_b_proj.weight" {
        return Ok(Role::KvB(bid));
    }
    if tail == "mlp.gate.e_score_correction_bias" {
        return Ok(Role::Plain(format!("blk.{bid}.exp_probs_b.bias")));
    }
    let (stem, suffix) = tail.rsplit_once('.').ok_or_else(|| unknown(name))?;
    let base = block_name(stem).ok_or_else(|| unknown(name))?;
    let out = format!("blk.{bid}.{base}.{suffix}");
    Ok(match stem {
        "self_attn.q_proj" if permute => Role::Permute(out, spec.num_heads),
        "self_attn.k_proj" if permute => Role::Permute(out, spec.num_kv_heads),
        _ => Role::Plain(out),
    })
}

/// HF module path inside a block (`self_attn.q_proj`) → llama.cpp tensor base name
/// (`attn_q`), as gguf-py's `tensor_mapping.py` maps them. Shared with the reference pass,
/// which reads GGUF files under HF names.
pub fn block_name(stem: &str) -> Option<&'static str> {
    Some(match stem {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_a_proj" => "attn_q_a",
        "self_attn.q_a_layernorm" => "attn_q_a_norm",
        "self_attn.q_b_proj" => "attn_q_b",
        "self_attn.kv_a_proj_with_mqa" => "attn_kv_a_mqa",
        "self_attn.kv_a_layernorm" => "attn_kv_a_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "mlp.gate" => "ffn_gate_inp",
        "mlp.shared_experts.gate_proj" => "ffn_gate_shexp",
        "mlp.shared_experts.up_proj" => "ffn_up_shexp",
        "mlp.shared_experts.down_proj" => "ffn_down_shexp",
        _ => return None,
    })
}

/// Output storage of one tensor (`conversion/base.py` `prepare_tensors`: 1-D tensors, norms and
/// the router stay F32).
fn out_dtype(name: &str, rank: usize, src: DType, out: OutType) -> DType {
    let keep_f32 = rank <= 1
        || name.ends_with("_norm.weight")
        || name.contains("ffn_gate_inp")
        || name.contains("exp_probs_b");
    match out {
        _ if keep_f32 => DType::F32,
        OutType::F32 => DType::F32,
        OutType::F16 => DType::F16,
        OutType::BF16 => DType::BF16,
        OutType::Keep if matches!(src, DType::F16 | DType::BF16) => src,
        OutType::Keep => DType::F32,
    }
}

/// Whether `name` is a tensor the mapping places (or deliberately skips) for `spec`.
pub(crate) fn is_mapped(name: &str, spec: &ModelSpec) -> bool {
    role(name, spec).is_ok()
}

/// Plans the GGUF for an HF model (folder, PyTorch folder, or renamed ONNX export).
pub fn plan(input: &HfInput<'_>, opts: &GgufOptions) -> Result<GgufPlan> {
    plan_logical(input, input.tensors, opts)
}

/// [`plan`] for a model whose weights are read through `logical` (a
/// [`crate::hf::storage::QuantizedView`] of the input for FP8/INT4/MLX checkpoints): tensors
/// are visited in the input's order (llama.cpp's), companions (scales, zero points) that
/// `logical` hides are skipped, and the planned tensors are read from `logical`.
pub fn plan_logical(
    input: &HfInput<'_>,
    logical: &dyn TensorSource,
    opts: &GgufOptions,
) -> Result<GgufPlan> {
    let (dir, config, spec) = (input.dir, input.config, input.spec);
    let mut tensors = extra_tensors(spec);
    let mut experts: BTreeMap<u64, BTreeMap<(&'static str, u64), String>> = BTreeMap::new();
    let mut params = 0u64;
    let mut expert_params = 0u64;
    for name in &input.order {
        let name = name.as_str();
        let Some(meta) = logical.meta(name).cloned() else {
            continue;
        };
        let numel = meta.numel()?;
        let r = role(name, spec)?;
        if !matches!(r, Role::Skip) {
            params += numel;
        }
        match r {
            Role::Skip => {}
            Role::Plain(out) => tensors.push(simple(out, &meta, opts.out, None)),
            Role::Permute(out, heads) => {
                let rows = meta.shape.dims().first().copied().unwrap_or(1);
                let t = permute_rows(rows, meta.shape.row_len(), heads);
                tensors.push(simple(out, &meta, opts.out, Some(t)));
            }
            Role::KvB(bid) => tensors.extend(kv_b(bid, &meta, spec, opts.out)?),
            Role::Expert {
                layer,
                expert,
                proj,
            } => {
                expert_params += numel;
                let set = experts.entry(layer).or_default();
                set.insert((proj, expert), name.to_owned());
                let n = spec.moe.as_ref().map_or(0, |m| m.n_routed_experts);
                if set.len() as u64 == 3 * n {
                    let set = experts.remove(&layer).unwrap_or_default();
                    tensors.extend(stack_experts(layer, &set, logical, n, opts.out)?);
                }
            }
        }
    }
    if let Some((layer, _)) = experts.into_iter().next() {
        return Err(Error::new(ErrorKind::Unconvertible(format!(
            "layer {layer}: incomplete set of experts"
        ))));
    }
    let kvs = metadata(dir, config, spec, opts, &tensors, params, expert_params)?;
    Ok(GgufPlan { kvs, tensors })
}

fn simple(
    out: String,
    meta: &TensorMeta,
    ot: OutType,
    transform: Option<crate::pipeline::Transform>,
) -> Planned {
    let dtype = out_dtype(&out, meta.shape.rank(), meta.dtype, ot);
    Planned {
        meta: TensorMeta::new(out, dtype, meta.shape.clone()),
        from: vec![meta.name.clone()],
        transform,
    }
}

fn extra_tensors(spec: &ModelSpec) -> Vec<Planned> {
    let RopeScaling::Llama3 { .. } = spec.rope.scaling else {
        return Vec::new();
    };
    let factors = llama3_rope_factors(spec);
    let meta = TensorMeta::new("rope_freqs.weight", DType::F32, vec![factors.len() as u64]);
    vec![Planned {
        meta,
        from: Vec::new(),
        transform: Some(Box::new(move |_| factors.clone())),
    }]
}

fn kv_b(bid: u64, meta: &TensorMeta, spec: &ModelSpec, ot: OutType) -> Result<Vec<Planned>> {
    let mla = spec.mla.as_ref().ok_or_else(|| unknown(&meta.name))?;
    let (heads, nope, v, lora) = (
        spec.num_heads,
        mla.qk_nope_head_dim,
        mla.v_head_dim,
        meta.shape.row_len(),
    );
    if meta.shape.dims() != [heads * (nope + v), lora] {
        return Err(Error::new(ErrorKind::Unconvertible(
            "kv_b_proj shape does not match the config".into(),
        ))
        .in_tensor(&meta.name));
    }
    let parts = [
        (
            format!("blk.{bid}.attn_k_b.weight"),
            vec![heads, lora, nope],
            true,
        ),
        (
            format!("blk.{bid}.attn_v_b.weight"),
            vec![heads, v, lora],
            false,
        ),
    ];
    Ok(parts
        .into_iter()
        .map(|(name, shape, is_k)| {
            let dtype = out_dtype(&name, 3, meta.dtype, ot);
            Planned {
                meta: TensorMeta::new(name, dtype, Shape::new(shape)),
                from: vec![meta.name.clone()],
                transform: Some(kv_b_part(heads, nope, v, lora, is_k)),
            }
        })
        .collect())
}

fn stack_experts(
    layer: u64,
    set: &BTreeMap<(&'static str, u64), String>,
    src: &dyn TensorSource,
    n: u64,
    ot: OutType,
) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    for (proj, gguf) in [
        ("down_proj.weight", "ffn_down_exps"),
        ("gate_proj.weight", "ffn_gate_exps"),
        ("up_proj.weight", "ffn_up_exps"),
    ] {
        let from: Vec<String> = (0..n)
            .filter_map(|e| set.get(&(proj, e)).cloned())
            .collect();
        let first = from
            .first()
            .and_then(|f| src.meta(f))
            .ok_or_else(|| unknown(proj))?;
        if from
            .iter()
            .any(|f| src.meta(f).map(|m| &m.shape) != Some(&first.shape))
        {
            return Err(Error::new(ErrorKind::Unconvertible(format!(
                "layer {layer}: experts differ in shape"
            ))));
        }
        let mut dims = vec![n];
        dims.extend_from_slice(first.shape.dims());
        let name = format!("blk.{layer}.{gguf}.weight");
        let dtype = out_dtype(&name, 3, first.dtype, ot);
        out.push(Planned {
            meta: TensorMeta::new(name, dtype, Shape::new(dims)),
            from,
            transform: None,
        });
    }
    Ok(out)
}

fn file_type(tensors: &[Planned]) -> u32 {
    let first = tensors
        .iter()
        .find(|t| t.meta.shape.rank() >= 2)
        .map(|t| t.meta.dtype);
    match first {
        Some(DType::F16) => 1,
        Some(DType::BF16) => 32,
        _ => 0,
    }
}

fn metadata(
    dir: &Path,
    config: &Json,
    spec: &ModelSpec,
    opts: &GgufOptions,
    tensors: &[Planned],
    params: u64,
    expert_params: u64,
) -> Result<Vec<(String, Value)>> {
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| n.split('_').map(capitalize).collect::<Vec<_>>().join("_"))
        .unwrap_or_else(|| "Model".into());
    let size_label = match &spec.moe {
        Some(m) if m.n_routed_experts > 0 => {
            let per_expert = expert_params / m.n_routed_experts;
            format!(
                "{}x{}",
                m.n_routed_experts,
                count_notation(params - expert_params + per_expert)
            )
        }
        _ => count_notation(params),
    };
    let mut kvs = arch_kvs(spec, config, &name, &size_label, file_type(tensors));
    kvs.push(("general.quantization_version".into(), Value::U32(2)));
    kvs.extend(tokenizer_kvs(
        dir,
        config,
        spec.vocab_size,
        opts.pre.as_deref(),
    )?);
    Ok(kvs)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
