//! The validated description of a supported decoder-only architecture.
//!
//! Readers build it from an HF `config.json` or from GGUF metadata; the reference forward pass,
//! the GGUF mapping and the target planner all read the same struct. Construction goes through
//! [`ModelSpec::validate`], so a `ModelSpec` in hand has consistent dimensions.

use std::fmt;

/// Architectures wharf converts and runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// `LlamaForCausalLM` (Llama 2/3, SmolLM2, TinyLlama, R1-Distill-Llama).
    Llama,
    /// `Qwen2ForCausalLM` (q/k/v biases).
    Qwen2,
    /// `MistralForCausalLM` (optional sliding window).
    Mistral,
    /// `DeepseekV2ForCausalLM` (MLA, softmax-routed MoE).
    DeepseekV2,
    /// `DeepseekV3ForCausalLM` (MLA, sigmoid-routed MoE with correction bias).
    DeepseekV3,
}

impl Architecture {
    /// The HF `architectures[0]` class name.
    pub const fn hf_class(self) -> &'static str {
        match self {
            Architecture::Llama => "LlamaForCausalLM",
            Architecture::Qwen2 => "Qwen2ForCausalLM",
            Architecture::Mistral => "MistralForCausalLM",
            Architecture::DeepseekV2 => "DeepseekV2ForCausalLM",
            Architecture::DeepseekV3 => "DeepseekV3ForCausalLM",
        }
    }

    /// The HF `model_type`.
    pub const fn model_type(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Mistral => "mistral",
            Architecture::DeepseekV2 => "deepseek_v2",
            Architecture::DeepseekV3 => "deepseek_v3",
        }
    }

    /// Every supported architecture.
    pub const ALL: [Architecture; 5] = [
        Architecture::Llama,
        Architecture::Qwen2,
        Architecture::Mistral,
        Architecture::DeepseekV2,
        Architecture::DeepseekV3,
    ];

    /// Whether this is a DeepSeek MLA + MoE architecture.
    pub const fn is_deepseek(self) -> bool {
        matches!(self, Architecture::DeepseekV2 | Architecture::DeepseekV3)
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.model_type())
    }
}

/// How rotary position frequencies are scaled.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor`.
    Linear {
        /// Scale factor.
        factor: f64,
    },
    /// Llama 3.1 frequency-band scaling.
    Llama3 {
        /// Scale factor for low frequencies.
        factor: f64,
        /// Low-frequency band edge.
        low_freq_factor: f64,
        /// High-frequency band edge.
        high_freq_factor: f64,
        /// Training context length.
        original_max_position: u64,
    },
    /// YaRN (DeepSeek V2/V3).
    Yarn {
        /// Context extension factor.
        factor: f64,
        /// Training context length.
        original_max_position: u64,
        /// Fast rotation boundary.
        beta_fast: f64,
        /// Slow rotation boundary.
        beta_slow: f64,
        /// Attention magnitude scale.
        mscale: f64,
        /// Attention magnitude scale over all dims.
        mscale_all_dim: f64,
    },
}

/// Rotary embedding parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Rope {
    /// Base frequency.
    pub theta: f64,
    /// Rotated dimensions per head.
    pub dim: u64,
    /// Frequency scaling.
    pub scaling: RopeScaling,
    /// Pairs are adjacent elements (`x[2i], x[2i+1]`) instead of halves (`x[i], x[i+d/2]`).
    /// HF Llama/Qwen2/Mistral use halves; DeepSeek's `rope_interleave` uses adjacent pairs,
    /// as does llama.cpp on Q/K rows its converter permuted.
    pub interleaved: bool,
}

/// Multi-head latent attention dimensions (DeepSeek V2/V3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mla {
    /// Query compression rank; `None` means a plain `q_proj`.
    pub q_lora_rank: Option<u64>,
    /// Key/value compression rank.
    pub kv_lora_rank: u64,
    /// Non-rotary part of each query/key head.
    pub qk_nope_head_dim: u64,
    /// Rotary part of each query/key head (shared across heads for keys).
    pub qk_rope_head_dim: u64,
    /// Value head dimension.
    pub v_head_dim: u64,
}

/// How router scores are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scoring {
    /// Softmax over experts (DeepSeek V2).
    Softmax,
    /// Per-expert sigmoid (DeepSeek V3).
    Sigmoid,
}

/// How the top-k experts are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopkMethod {
    /// Top-k over all experts.
    Greedy,
    /// Top groups by their best expert score, then top-k inside them (V2).
    GroupLimitedGreedy,
    /// Groups ranked by the sum of their top-2 biased scores; weights from unbiased scores (V3).
    NoauxTc,
}

/// Mixture-of-experts parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Moe {
    /// Routed experts per MoE layer.
    pub n_routed_experts: u64,
    /// Always-on shared experts per MoE layer.
    pub n_shared_experts: u64,
    /// Experts used per token.
    pub experts_per_token: u64,
    /// Hidden size of one expert.
    pub moe_intermediate_size: u64,
    /// Layers before this index are dense.
    pub first_k_dense_replace: u64,
    /// Every n-th layer after that is MoE.
    pub moe_layer_freq: u64,
    /// Expert groups.
    pub n_group: u64,
    /// Groups kept per token.
    pub topk_group: u64,
    /// Multiplier on routed expert weights.
    pub routed_scaling_factor: f64,
    /// Normalise the chosen weights to sum to one.
    pub norm_topk_prob: bool,
    /// Router score function.
    pub scoring: Scoring,
    /// Expert selection.
    pub topk_method: TopkMethod,
}

impl Moe {
    /// Whether layer `i` uses experts.
    pub fn is_moe_layer(&self, i: u64) -> bool {
        i >= self.first_k_dense_replace && i.is_multiple_of(self.moe_layer_freq.max(1))
    }
}

/// A validated model description.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// The architecture.
    pub arch: Architecture,
    /// Vocabulary rows of the embedding.
    pub vocab_size: u64,
    /// Residual width.
    pub hidden_size: u64,
    /// Dense MLP hidden size.
    pub intermediate_size: u64,
    /// Decoder layers.
    pub num_layers: u64,
    /// Query heads.
    pub num_heads: u64,
    /// Key/value heads (GQA/MQA); for MLA the HF value.
    pub num_kv_heads: u64,
    /// Per-head dimension of q/k/v (non-MLA).
    pub head_dim: u64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Maximum context length.
    pub max_position_embeddings: u64,
    /// Rotary embedding.
    pub rope: Rope,
    /// q/k/v projections carry biases (Qwen2, or `attention_bias`).
    pub qkv_bias: bool,
    /// The output projection carries a bias (`attention_bias` on Llama).
    pub o_bias: bool,
    /// MLP projections carry biases.
    pub mlp_bias: bool,
    /// `lm_head` shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Sliding-window attention span (Mistral).
    pub sliding_window: Option<u64>,
    /// Multi-head latent attention (DeepSeek).
    pub mla: Option<Mla>,
    /// Mixture of experts (DeepSeek).
    pub moe: Option<Moe>,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<u64>,
    /// End-of-sequence token.
    pub eos_token_id: Option<u64>,
}

/// A description whose numbers do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model description: {0}")]
pub struct InvalidSpec(pub String);

impl ModelSpec {
    /// Checks the dimensions are positive and consistent; returns the spec unchanged if so.
    pub fn validate(self) -> Result<Self, InvalidSpec> {
        let bad = |m: String| Err(InvalidSpec(m));
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
        ] {
            if v == 0 {
                return bad(format!("{name} is 0"));
            }
        }
        // Tiny models and DeepSeek-V3 alike fit well inside these bounds; larger values are
        // typos or hostile input that would otherwise size allocations.
        for (name, v, cap) in [
            ("vocab_size", self.vocab_size, 1 << 24),
            ("hidden_size", self.hidden_size, 1 << 20),
            ("num_hidden_layers", self.num_layers, 1 << 12),
            ("num_attention_heads", self.num_heads, 1 << 12),
            ("head_dim", self.head_dim, 1 << 14),
            ("intermediate_size", self.intermediate_size, 1 << 22),
        ] {
            if v > cap {
                return bad(format!("{name} = {v} exceeds {cap}"));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_heads, self.num_kv_heads
            ));
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps < 1.0) {
            return bad(format!(
                "rms_norm_eps {} is not in (0, 1)",
                self.rms_norm_eps
            ));
        }
        if !(self.rope.theta > 0.0 && self.rope.theta.is_finite()) {
            return bad(format!("rope theta {} is not positive", self.rope.theta));
        }
        if self.rope.dim == 0 || !self.rope.dim.is_multiple_of(2) {
            return bad(format!(
                "rotary dimension {} is not a positive even number",
                self.rope.dim
            ));
        }
        if self.mla.is_none() && self.rope.dim > self.head_dim {
            return bad(format!(
                "rotary dimension {} exceeds head_dim {}",
                self.rope.dim, self.head_dim
            ));
        }
        if let Some(mla) = &self.mla {
            if mla.kv_lora_rank == 0 || mla.qk_rope_head_dim == 0 || mla.v_head_dim == 0 {
                return bad("MLA ranks and head dims must be positive".into());
            }
            if mla.qk_rope_head_dim != self.rope.dim {
                return bad("qk_rope_head_dim must equal the rotary dimension".into());
            }
        }
        if let Some(moe) = &self.moe {
            if moe.n_routed_experts == 0 || moe.experts_per_token == 0 {
                return bad("n_routed_experts and num_experts_per_tok must be positive".into());
            }
            if moe.experts_per_token > moe.n_routed_experts {
                return bad("num_experts_per_tok exceeds n_routed_experts".into());
            }
            if moe.n_group == 0 || moe.n_routed_experts % moe.n_group != 0 {
                return bad("n_group must divide n_routed_experts".into());
            }
            if moe.topk_group == 0 || moe.topk_group > moe.n_group {
                return bad("topk_group must be in 1..=n_group".into());
            }
            if moe.n_routed_experts > 1 << 16 || moe.moe_intermediate_size > 1 << 22 {
                return bad("expert count or size out of range".into());
            }
        }
        if self.arch.is_deepseek() != self.mla.is_some() {
            return bad(format!(
                "{} needs MLA parameters exactly when it is DeepSeek",
                self.arch
            ));
        }
        Ok(self)
    }

    /// Query/key head dimension as attention sees it (MLA: nope + rope).
    pub fn qk_head_dim(&self) -> u64 {
        match &self.mla {
            Some(m) => m.qk_nope_head_dim + m.qk_rope_head_dim,
            None => self.head_dim,
        }
    }

    /// Value head dimension.
    pub fn v_head_dim(&self) -> u64 {
        match &self.mla {
            Some(m) => m.v_head_dim,
            None => self.head_dim,
        }
    }

    /// Whether layer `i` is a mixture-of-experts layer.
    pub fn is_moe_layer(&self, i: u64) -> bool {
        self.moe.as_ref().is_some_and(|m| m.is_moe_layer(i))
    }

    /// Query heads per key/value head.
    pub fn n_kv_groups(&self) -> u64 {
        self.num_heads / self.num_kv_heads
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn tiny_llama() -> ModelSpec {
        ModelSpec {
            arch: Architecture::Llama,
            vocab_size: 1024,
            hidden_size: 256,
            intermediate_size: 768,
            num_layers: 2,
            num_heads: 8,
            num_kv_heads: 4,
            head_dim: 32,
            rms_norm_eps: 1e-5,
            max_position_embeddings: 512,
            rope: Rope {
                theta: 1e4,
                dim: 32,
                scaling: RopeScaling::None,
                interleaved: false,
            },
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            tie_word_embeddings: false,
            sliding_window: None,
            mla: None,
            moe: None,
            bos_token_id: Some(0),
            eos_token_id: Some(1),
        }
    }

    #[test]
    fn valid_spec_passes() {
        assert!(tiny_llama().validate().is_ok());
    }

    #[test]
    fn inconsistent_heads_fail() {
        let mut s = tiny_llama();
        s.num_kv_heads = 3;
        assert!(s.validate().is_err());
        let mut s = tiny_llama();
        s.rope.dim = 33;
        assert!(s.validate().is_err());
        let mut s = tiny_llama();
        s.vocab_size = 1 << 40;
        assert!(s.validate().is_err());
    }
}
