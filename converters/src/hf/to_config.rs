//! The inverse of [`super::parse_config`]: a [`ModelSpec`] written as the `config.json`
//! transformers reads, so a model that arrived without one (a GGUF) can be written back as an
//! HF folder. `parse_config(config_json(spec)) == spec` for every spec we parse (tested).

use serde_json::{Map, Value, json};
use wharf_core::model::{Architecture, ModelSpec, RopeScaling, Scoring, TopkMethod};

/// `config.json` for `spec` (float32 weights).
pub fn config_json(spec: &ModelSpec) -> Value {
    let mut c = Map::new();
    let mut put = |k: &str, v: Value| {
        c.insert(k.to_owned(), v);
    };
    put("architectures", json!([spec.arch.hf_class()]));
    put("model_type", json!(spec.arch.model_type()));
    put("vocab_size", json!(spec.vocab_size));
    put("hidden_size", json!(spec.hidden_size));
    put("intermediate_size", json!(spec.intermediate_size));
    put("num_hidden_layers", json!(spec.num_layers));
    put("num_attention_heads", json!(spec.num_heads));
    put("num_key_value_heads", json!(spec.num_kv_heads));
    if spec.mla.is_none() {
        put("head_dim", json!(spec.head_dim));
    }
    put("rms_norm_eps", json!(spec.rms_norm_eps));
    put(
        "max_position_embeddings",
        json!(spec.max_position_embeddings),
    );
    put("rope_theta", json!(spec.rope.theta));
    put("rope_scaling", rope_scaling(&spec.rope.scaling));
    if spec.arch.is_deepseek() {
        put("rope_interleave", json!(spec.rope.interleaved));
    }
    if spec.arch != Architecture::Qwen2 {
        put("attention_bias", json!(spec.qkv_bias));
    }
    put("mlp_bias", json!(spec.mlp_bias));
    put("tie_word_embeddings", json!(spec.tie_word_embeddings));
    match spec.arch {
        Architecture::Mistral => put("sliding_window", json!(spec.sliding_window)),
        Architecture::Qwen2 => {
            put("use_sliding_window", json!(spec.sliding_window.is_some()));
            put("sliding_window", json!(spec.sliding_window));
        }
        _ => {}
    }
    if let Some(m) = &spec.mla {
        put("q_lora_rank", json!(m.q_lora_rank));
        put("kv_lora_rank", json!(m.kv_lora_rank));
        put("qk_nope_head_dim", json!(m.qk_nope_head_dim));
        put("qk_rope_head_dim", json!(m.qk_rope_head_dim));
        put("v_head_dim", json!(m.v_head_dim));
    }
    if let Some(m) = &spec.moe {
        put("n_routed_experts", json!(m.n_routed_experts));
        put("n_shared_experts", json!(m.n_shared_experts));
        put("num_experts_per_tok", json!(m.experts_per_token));
        put("moe_intermediate_size", json!(m.moe_intermediate_size));
        put("first_k_dense_replace", json!(m.first_k_dense_replace));
        put("moe_layer_freq", json!(m.moe_layer_freq));
        put("n_group", json!(m.n_group));
        put("topk_group", json!(m.topk_group));
        put("routed_scaling_factor", json!(m.routed_scaling_factor));
        put("norm_topk_prob", json!(m.norm_topk_prob));
        put(
            "scoring_func",
            json!(match m.scoring {
                Scoring::Sigmoid => "sigmoid",
                Scoring::Softmax => "softmax",
            }),
        );
        put(
            "topk_method",
            json!(match m.topk_method {
                TopkMethod::Greedy => "greedy",
                TopkMethod::GroupLimitedGreedy => "group_limited_greedy",
                TopkMethod::NoauxTc => "noaux_tc",
            }),
        );
    }
    put("bos_token_id", json!(spec.bos_token_id));
    put("eos_token_id", json!(spec.eos_token_id));
    put("torch_dtype", json!("float32"));
    Value::Object(c)
}

fn rope_scaling(s: &RopeScaling) -> Value {
    match s {
        RopeScaling::None => Value::Null,
        RopeScaling::Linear { factor } => json!({"rope_type": "linear", "factor": factor}),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position,
        } => json!({
            "rope_type": "llama3",
            "factor": factor,
            "low_freq_factor": low_freq_factor,
            "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": original_max_position,
        }),
        RopeScaling::Yarn {
            factor,
            original_max_position,
            beta_fast,
            beta_slow,
            mscale,
            mscale_all_dim,
        } => json!({
            "rope_type": "yarn",
            "factor": factor,
            "original_max_position_embeddings": original_max_position,
            "beta_fast": beta_fast,
            "beta_slow": beta_slow,
            "mscale": mscale,
            "mscale_all_dim": mscale_all_dim,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::hf::{load_config, parse_config};

    #[test]
    fn every_fixture_config_round_trips_through_the_spec() {
        for m in [
            "llama",
            "llama_tied",
            "qwen2",
            "mistral_bf16",
            "deepseek_v3",
        ] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/data/fixtures/models")
                .join(m);
            let (_, spec) = load_config(&dir).unwrap();
            assert_eq!(parse_config(&config_json(&spec)).unwrap(), spec, "{m}");
        }
    }

    #[test]
    fn scaled_ropes_round_trip() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures/models/deepseek_v3");
        let (mut v, _) = load_config(&dir).unwrap();
        v["rope_scaling"] = json!({"type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
            "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0});
        let spec = parse_config(&v).unwrap();
        assert_eq!(parse_config(&config_json(&spec)).unwrap(), spec);
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures/models/llama_tied");
        let (_, spec) = load_config(&dir).unwrap();
        assert!(matches!(spec.rope.scaling, RopeScaling::Llama3 { .. }));
        assert_eq!(parse_config(&config_json(&spec)).unwrap(), spec);
    }
}
