//! Architecture metadata for llama.cpp, in the order its converter writes it
//! (`conversion/base.py` `set_gguf_parameters`, `llama.py`, `deepseek.py`; key names from
//! gguf-py `constants.py`). llama.cpp reads every key listed here.

use serde_json::Value as Json;
use wharf_core::model::{Architecture, ModelSpec, RopeScaling, Scoring};

use crate::gguf::Value;

/// The `general.architecture` llama.cpp uses for `arch` (Mistral runs as llama).
pub fn gguf_arch(arch: Architecture) -> &'static str {
    match arch {
        Architecture::Llama | Architecture::Mistral => "llama",
        Architecture::Qwen2 => "qwen2",
        Architecture::DeepseekV2 | Architecture::DeepseekV3 => "deepseek2",
    }
}

fn u32v(v: u64) -> Value {
    Value::U32(u32::try_from(v).unwrap_or(u32::MAX))
}

/// Metadata keys before `general.file_type` plus the architecture keys after it.
pub fn arch_kvs(
    spec: &ModelSpec,
    config: &Json,
    name: &str,
    size_label: &str,
    file_type: u32,
) -> Vec<(String, Value)> {
    let a = gguf_arch(spec.arch);
    let mut kv: Vec<(String, Value)> = Vec::new();
    let mut put = |k: &str, v: Value| {
        kv.push((
            if k.starts_with("general.") {
                k.to_owned()
            } else {
                format!("{a}.{k}")
            },
            v,
        ))
    };
    put("general.architecture", Value::String(a.into()));
    put("general.type", Value::String("model".into()));
    put("general.name", Value::String(name.into()));
    put("general.size_label", Value::String(size_label.into()));
    put("block_count", u32v(spec.num_layers));
    put("context_length", u32v(spec.max_position_embeddings));
    put("embedding_length", u32v(spec.hidden_size));
    put("feed_forward_length", u32v(spec.intermediate_size));
    put("attention.head_count", u32v(spec.num_heads));
    let kv_heads = if spec.mla.is_some() {
        1
    } else {
        spec.num_kv_heads
    };
    put("attention.head_count_kv", u32v(kv_heads));
    rope_scaling(spec, &mut put);
    put("rope.freq_base", Value::F32(spec.rope.theta as f32));
    put(
        "attention.layer_norm_rms_epsilon",
        Value::F32(spec.rms_norm_eps as f32),
    );
    if let Some(m) = &spec.moe {
        put("expert_count", u32v(m.n_routed_experts));
        put("expert_used_count", u32v(m.experts_per_token));
        put("expert_group_count", u32v(m.n_group));
        put("expert_group_used_count", u32v(m.topk_group));
        put(
            "expert_gating_func",
            Value::U32(if m.scoring == Scoring::Sigmoid { 2 } else { 1 }),
        );
    }
    match &spec.mla {
        Some(m) => {
            put(
                "attention.key_length",
                u32v(m.kv_lora_rank + m.qk_rope_head_dim),
            );
            put("attention.value_length", u32v(m.kv_lora_rank));
        }
        None if config.get("head_dim").is_some_and(|h| !h.is_null()) => {
            put("attention.key_length", u32v(spec.head_dim));
            put("attention.value_length", u32v(spec.head_dim));
        }
        None => {}
    }
    put("general.file_type", Value::U32(file_type));
    tail_kvs(spec, &mut put);
    kv
}

fn rope_scaling(spec: &ModelSpec, put: &mut impl FnMut(&str, Value)) {
    match &spec.rope.scaling {
        RopeScaling::Linear { factor } => {
            put("rope.scaling.type", Value::String("linear".into()));
            put("rope.scaling.factor", Value::F32(*factor as f32));
        }
        RopeScaling::Yarn {
            factor,
            original_max_position,
            beta_fast,
            beta_slow,
            ..
        } => {
            put("rope.scaling.type", Value::String("yarn".into()));
            put("rope.scaling.factor", Value::F32(*factor as f32));
            put(
                "rope.scaling.original_context_length",
                u32v(*original_max_position),
            );
            put("rope.scaling.yarn_beta_fast", Value::F32(*beta_fast as f32));
            put("rope.scaling.yarn_beta_slow", Value::F32(*beta_slow as f32));
        }
        RopeScaling::None | RopeScaling::Llama3 { .. } => {}
    }
}

fn tail_kvs(spec: &ModelSpec, put: &mut impl FnMut(&str, Value)) {
    match (&spec.mla, &spec.moe) {
        (Some(mla), Some(moe)) => {
            put("leading_dense_block_count", u32v(moe.first_k_dense_replace));
            put("vocab_size", u32v(spec.vocab_size));
            if let Some(q) = mla.q_lora_rank {
                put("attention.q_lora_rank", u32v(q));
            }
            put("attention.kv_lora_rank", u32v(mla.kv_lora_rank));
            put(
                "attention.key_length_mla",
                u32v(mla.qk_nope_head_dim + mla.qk_rope_head_dim),
            );
            put("attention.value_length_mla", u32v(mla.v_head_dim));
            put(
                "expert_feed_forward_length",
                u32v(moe.moe_intermediate_size),
            );
            put("expert_shared_count", u32v(moe.n_shared_experts));
            put(
                "expert_weights_scale",
                Value::F32(moe.routed_scaling_factor as f32),
            );
            if moe.norm_topk_prob {
                put("expert_weights_norm", Value::Bool(true));
            }
            put("rope.dimension_count", u32v(mla.qk_rope_head_dim));
            if let RopeScaling::Yarn { mscale_all_dim, .. } = spec.rope.scaling
                && mscale_all_dim != 0.0
            {
                // llama.cpp's legacy DeepSeek convention: 0.1 * mscale_all_dim.
                let v = Value::F32((0.1 * mscale_all_dim) as f32);
                put("rope.scaling.yarn_log_multiplier", v);
            }
        }
        _ if spec.arch == Architecture::Qwen2 => {}
        _ => {
            put("vocab_size", u32v(spec.vocab_size));
            put("rope.dimension_count", u32v(spec.rope.dim));
        }
    }
}

/// gguf-py's `model_weight_count_rounded_notation`: 2.1M, 8.0B, ...
pub fn count_notation(n: u64) -> String {
    let (scale, suffix) = match n {
        n if n > 1_000_000_000_000 => (1e12, "T"),
        n if n > 1_000_000_000 => (1e9, "B"),
        n if n > 1_000_000 => (1e6, "M"),
        _ => (1e3, "K"),
    };
    let scaled = n as f64 / scale;
    let digits = format!("{}", scaled.round() as u64)
        .trim_start_matches('0')
        .len();
    let fix = 2usize.saturating_sub(digits);
    format!("{scaled:.fix$}{suffix}")
}
