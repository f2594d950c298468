//! GGUF metadata → [`ModelSpec`], reading the keys llama.cpp's converter writes
//! (gguf-py `constants.py`; llama.cpp `src/llama-model.cpp` `load_hparams` for defaults).

use wharf_converters::gguf::{GgufFile, Value};
use wharf_core::TensorSource;
use wharf_core::model::{
    Architecture, Mla, ModelSpec, Moe, Rope, RopeScaling, Scoring, TopkMethod,
};

use crate::{Error, Result};

struct Meta<'a> {
    file: &'a GgufFile,
    arch: &'a str,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.file.get(&format!("{}.{key}", self.arch))
    }
    fn u64(&self, key: &str) -> Result<u64> {
        self.opt_u64(key)
            .ok_or_else(|| Error::Spec(format!("GGUF key `{}.{key}` is missing", self.arch)))
    }
    fn opt_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }
    fn f64_or(&self, key: &str, default: f64) -> f64 {
        self.get(key).and_then(Value::as_f64).unwrap_or(default)
    }
    fn has_tensor(&self, name: &str) -> bool {
        self.file.meta(name).is_some()
    }
    /// Outer dimension of a stored tensor.
    fn rows_of(&self, name: &str) -> Option<u64> {
        self.file
            .meta(name)
            .and_then(|m| m.shape.dims().first().copied())
    }
}

/// The description of the model in `file`, and whether its Q/K rows are llama-permuted.
pub(super) fn from_metadata(file: &GgufFile) -> Result<(ModelSpec, bool)> {
    let arch_name = file
        .get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Spec("GGUF has no general.architecture".into()))?;
    let m = Meta {
        file,
        arch: arch_name,
    };
    let arch = match arch_name {
        "llama" => Architecture::Llama,
        "qwen2" => Architecture::Qwen2,
        // llama.cpp's expert_gating_func: 1 softmax (V2), 2 sigmoid (V3).
        "deepseek2" if m.opt_u64("expert_gating_func") == Some(2) => Architecture::DeepseekV3,
        "deepseek2" => Architecture::DeepseekV2,
        other => {
            return Err(Error::Spec(format!(
                "unsupported GGUF architecture `{other}`"
            )));
        }
    };
    let hidden = m.u64("embedding_length")?;
    let heads = m.u64("attention.head_count")?;
    let vocab = match m.opt_u64("vocab_size") {
        Some(v) => v,
        None => m
            .rows_of("token_embd.weight")
            .ok_or_else(|| Error::Spec("no token_embd.weight".into()))?,
    };
    let mla = arch.is_deepseek().then(|| mla(&m)).transpose()?;
    let head_dim = match &mla {
        Some(x) => x.qk_nope_head_dim + x.qk_rope_head_dim,
        None => m
            .opt_u64("attention.key_length")
            .unwrap_or(hidden / heads.max(1)),
    };
    let rope_dim = m.opt_u64("rope.dimension_count").unwrap_or(head_dim);
    let spec = ModelSpec {
        arch,
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: m.u64("feed_forward_length")?,
        num_layers: m.u64("block_count")?,
        num_heads: heads,
        num_kv_heads: if mla.is_some() {
            heads
        } else {
            m.opt_u64("attention.head_count_kv").unwrap_or(heads)
        },
        head_dim,
        rms_norm_eps: m.f64_or("attention.layer_norm_rms_epsilon", 1e-6),
        max_position_embeddings: m.opt_u64("context_length").unwrap_or(2048),
        rope: Rope {
            theta: m.f64_or("rope.freq_base", 10_000.0),
            dim: rope_dim,
            scaling: rope_scaling(&m),
            // DeepSeek rotates adjacent pairs (llama.cpp rope type NORM on unpermuted rows);
            // llama-permuted Q/K are read back in HF order and rotate halves.
            interleaved: arch.is_deepseek(),
        },
        qkv_bias: m.has_tensor("blk.0.attn_q.bias"),
        o_bias: m.has_tensor("blk.0.attn_output.bias"),
        mlp_bias: m.has_tensor("blk.0.ffn_up.bias"),
        tie_word_embeddings: !m.has_tensor("output.weight"),
        sliding_window: None,
        moe: arch.is_deepseek().then(|| moe(&m, arch)).transpose()?,
        mla,
        bos_token_id: file
            .get("tokenizer.ggml.bos_token_id")
            .and_then(Value::as_u64),
        eos_token_id: file
            .get("tokenizer.ggml.eos_token_id")
            .and_then(Value::as_u64),
    };
    let spec = spec.validate().map_err(|e| Error::Spec(e.0))?;
    Ok((spec, arch == Architecture::Llama))
}

fn rope_scaling(m: &Meta<'_>) -> RopeScaling {
    let kind = m.get("rope.scaling.type").and_then(Value::as_str);
    let factor = m.f64_or("rope.scaling.factor", 1.0);
    match kind {
        Some("linear") => RopeScaling::Linear { factor },
        Some("yarn") => {
            // The converter stores 0.1 * mscale_all_dim (`yarn_log_multiplier`); DeepSeek sets
            // mscale = mscale_all_dim, which the file does not carry separately.
            let all = m.f64_or("rope.scaling.yarn_log_multiplier", 0.0) / 0.1;
            RopeScaling::Yarn {
                factor,
                original_max_position: m
                    .opt_u64("rope.scaling.original_context_length")
                    .unwrap_or(4096),
                beta_fast: m.f64_or("rope.scaling.yarn_beta_fast", 32.0),
                beta_slow: m.f64_or("rope.scaling.yarn_beta_slow", 1.0),
                mscale: all,
                mscale_all_dim: all,
            }
        }
        // llama3 scaling arrives as `rope_freqs.weight` divisors (see `Weights::rope_freq_factors`).
        _ => RopeScaling::None,
    }
}

fn mla(m: &Meta<'_>) -> Result<Mla> {
    let kv_lora = m.u64("attention.kv_lora_rank")?;
    let rope = m.u64("rope.dimension_count")?;
    let qk = match m.opt_u64("attention.key_length_mla") {
        Some(k) => k,
        None => m.u64("attention.key_length")?,
    };
    let v = match m.opt_u64("attention.value_length_mla") {
        Some(v) => v,
        None => m.u64("attention.value_length")?,
    };
    Ok(Mla {
        q_lora_rank: m.opt_u64("attention.q_lora_rank").filter(|&r| r > 0),
        kv_lora_rank: kv_lora,
        qk_nope_head_dim: qk.saturating_sub(rope),
        qk_rope_head_dim: rope,
        v_head_dim: v,
    })
}

fn moe(m: &Meta<'_>, arch: Architecture) -> Result<Moe> {
    let v3 = arch == Architecture::DeepseekV3;
    let n_group = m.opt_u64("expert_group_count").unwrap_or(1);
    let topk_method = if v3 {
        TopkMethod::NoauxTc
    } else if n_group > 1 {
        TopkMethod::GroupLimitedGreedy
    } else {
        TopkMethod::Greedy
    };
    Ok(Moe {
        n_routed_experts: m.u64("expert_count")?,
        n_shared_experts: m.opt_u64("expert_shared_count").unwrap_or(0),
        experts_per_token: m.u64("expert_used_count")?,
        moe_intermediate_size: m.u64("expert_feed_forward_length")?,
        first_k_dense_replace: m.opt_u64("leading_dense_block_count").unwrap_or(0),
        moe_layer_freq: 1,
        n_group,
        topk_group: m.opt_u64("expert_group_used_count").unwrap_or(1),
        routed_scaling_factor: m.f64_or("expert_weights_scale", 1.0),
        norm_topk_prob: m
            .get("expert_weights_norm")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        scoring: if v3 {
            Scoring::Sigmoid
        } else {
            Scoring::Softmax
        },
        topk_method,
    })
}
