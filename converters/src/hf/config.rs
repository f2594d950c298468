//! HF `config.json` → validated [`ModelSpec`].
//!
//! Field names and defaults follow transformers' `configuration_*.py` for each class; rope
//! parameters are read from `rope_scaling` or transformers 5's `rope_parameters`.

use std::path::Path;

use serde_json::Value;
use wharf_core::model::{
    Architecture, Mla, ModelSpec, Moe, Rope, RopeScaling, Scoring, TopkMethod,
};

use crate::error::{Error, ErrorKind, Result};
use crate::json::read_strict;

fn config_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Config(msg.into()))
}

/// Typed access to a config object with errors that name the key.
struct Cfg<'a>(&'a Value);

impl Cfg<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn u64(&self, key: &str) -> Result<u64> {
        self.opt_u64(key)?
            .ok_or_else(|| config_err(format!("`{key}` is missing")))
    }

    fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| config_err(format!("`{key}` must be a non-negative integer")))
            })
            .transpose()
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        self.get(key).map_or(Ok(default), |v| {
            v.as_f64()
                .ok_or_else(|| config_err(format!("`{key}` must be a number")))
        })
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        self.get(key).map_or(Ok(default), |v| {
            v.as_bool()
                .ok_or_else(|| config_err(format!("`{key}` must be a boolean")))
        })
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// The architecture named by `architectures[0]` (or `model_type` when that is absent).
pub fn architecture(config: &Value) -> Result<Architecture> {
    let class = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str);
    if let Some(class) = class {
        return Architecture::ALL
            .into_iter()
            .find(|a| a.hf_class() == class)
            .ok_or_else(|| Error::new(ErrorKind::UnknownArchitecture(class.to_owned())));
    }
    let mt = config
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    Architecture::ALL
        .into_iter()
        .find(|a| a.model_type() == mt)
        .ok_or_else(|| Error::new(ErrorKind::UnknownArchitecture(mt.to_owned())))
}

/// Reads and validates `dir/config.json`.
pub fn load_config(dir: &Path) -> Result<(Value, ModelSpec)> {
    load_config_file(&dir.join("config.json"))
}

/// Reads and validates a config file given by path (an ONNX export's `--config`).
pub fn load_config_file(path: &Path) -> Result<(Value, ModelSpec)> {
    let v = read_strict(path)?;
    let spec = parse_config(&v).map_err(|e| e.in_file(path))?;
    Ok((v, spec))
}

/// Parses a config object into a validated [`ModelSpec`].
pub fn parse_config(v: &Value) -> Result<ModelSpec> {
    let arch = architecture(v)?;
    let c = Cfg(v);
    let hidden = c.u64("hidden_size")?;
    let heads = c.u64("num_attention_heads")?;
    let kv_heads = c.opt_u64("num_key_value_heads")?.unwrap_or(heads);
    let mla = if arch.is_deepseek() {
        Some(mla(&c)?)
    } else {
        None
    };
    let head_dim = match &mla {
        Some(m) => m.qk_nope_head_dim + m.qk_rope_head_dim,
        None => c.opt_u64("head_dim")?.unwrap_or(hidden / heads.max(1)),
    };
    let rope_dim = mla.as_ref().map_or(head_dim, |m| m.qk_rope_head_dim);
    let bias = c.bool_or("attention_bias", false)?;
    let spec = ModelSpec {
        arch,
        vocab_size: c.u64("vocab_size")?,
        hidden_size: hidden,
        intermediate_size: c.u64("intermediate_size")?,
        num_layers: c.u64("num_hidden_layers")?,
        num_heads: heads,
        num_kv_heads: if mla.is_some() { heads } else { kv_heads },
        head_dim,
        rms_norm_eps: c.f64_or("rms_norm_eps", 1e-6)?,
        max_position_embeddings: c.opt_u64("max_position_embeddings")?.unwrap_or(2048),
        rope: rope(&c, rope_dim, arch)?,
        qkv_bias: arch == Architecture::Qwen2 || bias,
        o_bias: bias && !arch.is_deepseek(),
        mlp_bias: c.bool_or("mlp_bias", false)?,
        tie_word_embeddings: c.bool_or("tie_word_embeddings", false)?,
        sliding_window: sliding_window(&c, arch)?,
        mla,
        moe: if arch.is_deepseek() {
            Some(moe(&c, arch)?)
        } else {
            None
        },
        bos_token_id: c.opt_u64("bos_token_id")?,
        eos_token_id: eos(&c),
    };
    spec.validate().map_err(|e| config_err(e.0))
}

fn eos(c: &Cfg<'_>) -> Option<u64> {
    match c.get("eos_token_id") {
        Some(Value::Array(a)) => a.first().and_then(Value::as_u64),
        Some(v) => v.as_u64(),
        None => None,
    }
}

fn sliding_window(c: &Cfg<'_>, arch: Architecture) -> Result<Option<u64>> {
    let enabled = match arch {
        Architecture::Mistral => true,
        Architecture::Qwen2 => c.bool_or("use_sliding_window", false)?,
        _ => false,
    };
    Ok(if enabled {
        c.opt_u64("sliding_window")?
    } else {
        None
    })
}

fn mla(c: &Cfg<'_>) -> Result<Mla> {
    // DeepSeek-V2-Lite writes `q_lora_rank: null`; some exports write 0 for the same meaning.
    let q = c.opt_u64("q_lora_rank")?.filter(|&r| r > 0);
    Ok(Mla {
        q_lora_rank: q,
        kv_lora_rank: c.u64("kv_lora_rank")?,
        qk_nope_head_dim: c.u64("qk_nope_head_dim")?,
        qk_rope_head_dim: c.u64("qk_rope_head_dim")?,
        v_head_dim: c.u64("v_head_dim")?,
    })
}

fn moe(c: &Cfg<'_>, arch: Architecture) -> Result<Moe> {
    let v3 = arch == Architecture::DeepseekV3;
    let scoring = match c
        .str("scoring_func")
        .unwrap_or(if v3 { "sigmoid" } else { "softmax" })
    {
        "sigmoid" => Scoring::Sigmoid,
        "softmax" => Scoring::Softmax,
        other => return Err(config_err(format!("unknown scoring_func `{other}`"))),
    };
    let topk_method = match c
        .str("topk_method")
        .unwrap_or(if v3 { "noaux_tc" } else { "greedy" })
    {
        "greedy" => TopkMethod::Greedy,
        "group_limited_greedy" => TopkMethod::GroupLimitedGreedy,
        "noaux_tc" => TopkMethod::NoauxTc,
        other => return Err(config_err(format!("unknown topk_method `{other}`"))),
    };
    Ok(Moe {
        n_routed_experts: c.u64("n_routed_experts")?,
        n_shared_experts: c.opt_u64("n_shared_experts")?.unwrap_or(0),
        experts_per_token: c.u64("num_experts_per_tok")?,
        moe_intermediate_size: c.u64("moe_intermediate_size")?,
        first_k_dense_replace: c.opt_u64("first_k_dense_replace")?.unwrap_or(0),
        moe_layer_freq: c.opt_u64("moe_layer_freq")?.unwrap_or(1),
        n_group: c.opt_u64("n_group")?.unwrap_or(1),
        topk_group: c.opt_u64("topk_group")?.unwrap_or(1),
        routed_scaling_factor: c.f64_or("routed_scaling_factor", 1.0)?,
        norm_topk_prob: c.bool_or("norm_topk_prob", false)?,
        scoring,
        topk_method,
    })
}

fn rope(c: &Cfg<'_>, dim: u64, arch: Architecture) -> Result<Rope> {
    let params = c.get("rope_scaling").or_else(|| c.get("rope_parameters"));
    let p = Cfg(params.unwrap_or(&Value::Null));
    let theta = match c.get("rope_theta") {
        Some(_) => c.f64_or("rope_theta", 10_000.0)?,
        None => p.f64_or("rope_theta", 10_000.0)?,
    };
    let kind = p
        .str("rope_type")
        .or_else(|| p.str("type"))
        .unwrap_or("default");
    let orig = |fallback| {
        p.opt_u64("original_max_position_embeddings")
            .map(|o| o.unwrap_or(fallback))
    };
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: p.f64_or("factor", 1.0)?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: p.f64_or("factor", 8.0)?,
            low_freq_factor: p.f64_or("low_freq_factor", 1.0)?,
            high_freq_factor: p.f64_or("high_freq_factor", 4.0)?,
            original_max_position: orig(8192)?,
        },
        "yarn" => RopeScaling::Yarn {
            factor: p.f64_or("factor", 1.0)?,
            original_max_position: orig(4096)?,
            beta_fast: p.f64_or("beta_fast", 32.0)?,
            beta_slow: p.f64_or("beta_slow", 1.0)?,
            mscale: p.f64_or("mscale", 1.0)?,
            mscale_all_dim: p.f64_or("mscale_all_dim", 0.0)?,
        },
        other => return Err(config_err(format!("unsupported rope type `{other}`"))),
    };
    // DeepSeek's rope pairs adjacent dimensions (`rope_interleave`, default true in transformers).
    let interleaved = arch.is_deepseek() && c.bool_or("rope_interleave", true)?;
    Ok(Rope {
        theta,
        dim,
        scaling,
        interleaved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> ModelSpec {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/fixtures/models")
            .join(name);
        load_config(&dir).unwrap().1
    }

    #[test]
    fn parses_every_fixture_architecture() {
        let l = fixture("llama");
        assert_eq!(
            (l.arch, l.num_heads, l.num_kv_heads, l.head_dim),
            (Architecture::Llama, 8, 4, 32)
        );
        let t = fixture("llama_tied");
        assert!(t.tie_word_embeddings);
        assert!(
            matches!(t.rope.scaling, RopeScaling::Llama3 { factor, original_max_position: 8192, .. } if factor == 32.0)
        );
        assert!(fixture("qwen2").qkv_bias);
        assert_eq!(fixture("mistral_bf16").arch, Architecture::Mistral);
        let d = fixture("deepseek_v3");
        let (mla, moe) = (d.mla.clone().unwrap(), d.moe.clone().unwrap());
        assert_eq!(
            (mla.q_lora_rank, mla.kv_lora_rank, d.head_dim),
            (Some(256), 128, 128)
        );
        assert_eq!(
            (moe.n_routed_experts, moe.topk_method, moe.scoring),
            (8, TopkMethod::NoauxTc, Scoring::Sigmoid)
        );
        assert!(d.rope.interleaved && d.rope.dim == 64);
    }

    #[test]
    fn unknown_architecture_and_bad_fields_are_clear_errors() {
        let v: Value = serde_json::json!({"architectures": ["GPT2LMHeadModel"]});
        let e = parse_config(&v).unwrap_err();
        assert!(
            e.to_string().contains("GPT2LMHeadModel") && e.to_string().contains("LlamaForCausalLM")
        );
        let v: Value =
            serde_json::json!({"architectures": ["LlamaForCausalLM"], "hidden_size": "big"});
        assert!(
            parse_config(&v)
                .unwrap_err()
                .to_string()
                .contains("hidden_size")
        );
    }

    #[test]
    fn yarn_and_q_lora_zero() {
        let mut v: Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../tests/data/fixtures/models/deepseek_v3/config.json"),
            )
            .unwrap(),
        )
        .unwrap();
        v["q_lora_rank"] = 0.into();
        v["rope_scaling"] = serde_json::json!({"type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
            "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0});
        let s = parse_config(&v).unwrap();
        assert_eq!(s.mla.unwrap().q_lora_rank, None);
        assert!(matches!(s.rope.scaling, RopeScaling::Yarn { factor, .. } if factor == 40.0));
    }
}
