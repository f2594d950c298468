//! GGUF → HF folder: the reverse of llama.cpp's converter, so a GGUF can be converted back.
//!
//! The reference crate already reads a GGUF under HF names with HF semantics (Q/K rows
//! un-permuted, `kv_b_proj` reassembled from `attn_k_b`/`attn_v_b`, experts unstacked, the model
//! description rebuilt from metadata); this writes exactly those tensors, one at a time, as
//! safetensors shards with `config.json` (`converters::hf::config_json`) and, for gpt2 BPE
//! vocabularies, `tokenizer.json`.

use std::collections::BTreeMap;
use std::path::Path;

use wharf_converters::atomic::AtomicDir;
use wharf_converters::gguf::GgufFile;
use wharf_converters::hf::{config_json, llama3_rope_factors};
use wharf_converters::safetensors::{ShardedWriter, plan_shards};
use wharf_core::model::{ModelSpec, RopeScaling};
use wharf_core::{DType, Shape, TensorMeta, TensorSink};
use wharf_reference::weights::{GgufWeights, Weights};

use crate::folder::{SHARD_BYTES, write_file};
use crate::{Error, Result};

/// Every HF tensor the model of `spec` can have, in a stable order (missing ones are skipped).
fn candidates(spec: &ModelSpec) -> Vec<String> {
    let mut out = vec!["model.embed_tokens.weight".to_owned()];
    for l in 0..spec.num_layers {
        let p = format!("model.layers.{l}");
        for n in ["input_layernorm", "post_attention_layernorm"] {
            out.push(format!("{p}.{n}.weight"));
        }
        let attn = match &spec.mla {
            Some(_) => &[
                "q_proj",
                "q_a_proj",
                "q_a_layernorm",
                "q_b_proj",
                "kv_a_proj_with_mqa",
                "kv_a_layernorm",
                "kv_b_proj",
                "o_proj",
            ][..],
            None => &["q_proj", "k_proj", "v_proj", "o_proj"][..],
        };
        for a in attn {
            out.push(format!("{p}.self_attn.{a}.weight"));
            out.push(format!("{p}.self_attn.{a}.bias"));
        }
        let mut mlp = |prefix: String| {
            for m in ["gate_proj", "up_proj", "down_proj"] {
                out.push(format!("{prefix}.{m}.weight"));
            }
        };
        match &spec.moe {
            Some(m) if spec.is_moe_layer(l) => {
                for e in 0..m.n_routed_experts {
                    mlp(format!("{p}.mlp.experts.{e}"));
                }
                mlp(format!("{p}.mlp.shared_experts"));
                out.push(format!("{p}.mlp.gate.weight"));
                out.push(format!("{p}.mlp.gate.e_score_correction_bias"));
            }
            _ => mlp(format!("{p}.mlp")),
        }
    }
    out.push("model.norm.weight".into());
    if !spec.tie_word_embeddings {
        out.push("lm_head.weight".into());
    }
    out
}

/// Vectors in HF (norms, biases, the router's correction bias) are 1-D.
fn is_vector(name: &str) -> bool {
    name.ends_with("norm.weight") || name.ends_with(".bias") || name.ends_with("correction_bias")
}

/// Writes the HF folder for the GGUF `src` at `out` with float weights in `dtype`.
pub fn write(src: &Path, out: &Path, dtype: DType) -> Result<usize> {
    if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(Error::Unsupported(format!(
            "an HF folder in {dtype} is not supported"
        )));
    }
    let file = GgufFile::open(src)?;
    let tokenizer = wharf_reference::Tokenizer::from_gguf(&file)
        .and_then(|t| t.to_json())
        .ok();
    let weights = GgufWeights::new(file).map_err(reference)?;
    let spec = hf_spec(&weights)?;
    let metas: Vec<TensorMeta> = candidates(&spec)
        .into_iter()
        .filter_map(|n| {
            let [rows, cols] = weights.shape(&n)?;
            let dims = if is_vector(&n) {
                vec![cols as u64]
            } else {
                vec![rows as u64, cols as u64]
            };
            // Norms and biases stay F32, as the source models keep them.
            let dt = if is_vector(&n) { DType::F32 } else { dtype };
            Some(TensorMeta::new(n, dt, Shape::new(dims)))
        })
        .collect();
    let dir = AtomicDir::create(out)?;
    let shards = plan_shards(&metas, SHARD_BYTES)?;
    let meta = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
    let mut w = Box::new(ShardedWriter::new(dir.path(), shards, meta));
    for m in &metas {
        let size = |r: std::result::Result<u64, wharf_core::LayoutError>| {
            r.ok()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| Error::Unsupported(format!("`{}` is too large", m.name)))
        };
        let numel = size(m.numel())?;
        let mut values = vec![0f32; numel];
        weights
            .read_rows(&m.name, 0, &mut values)
            .map_err(reference)?;
        let mut bytes = vec![0u8; size(m.nbytes())?];
        wharf_core::cast::encode_f32(m.dtype, &values, &mut bytes)
            .map_err(|e| Error::Unsupported(e.to_string()))?;
        w.write(&m.name, &bytes)
            .map_err(|e| Error::Unsupported(e.to_string()))?;
    }
    w.finish().map_err(|e| Error::Unsupported(e.to_string()))?;
    let mut config = serde_json::to_string_pretty(&config_json(&spec)).unwrap_or_default();
    config.push('\n');
    write_file(&dir.path().join("config.json"), config.as_bytes())?;
    if let Some(t) = tokenizer {
        write_file(&dir.path().join("tokenizer.json"), t.as_bytes())?;
    }
    dir.commit()?;
    Ok(metas.len())
}

/// The model description as HF configs state it: GGUF holds f32 scalars (`1e-5` reads back as
/// `9.9999997e-6`), so they are written as the shortest decimal of their f32; and llama.cpp
/// stores Llama 3 rope scaling only as a `rope_freqs` tensor, so the Llama 3.1 parameters are
/// restored when they reproduce that tensor exactly (otherwise the tensor cannot be expressed in
/// a config, and the conversion is refused rather than silently changing the model).
fn hf_spec(weights: &GgufWeights) -> Result<ModelSpec> {
    let mut spec = weights.spec().clone();
    let short = |x: f64| format!("{}", x as f32).parse().unwrap_or(x);
    spec.rms_norm_eps = short(spec.rms_norm_eps);
    spec.rope.theta = short(spec.rope.theta);
    let Some(freqs) = weights.rope_freq_factors().map_err(reference)? else {
        return Ok(spec);
    };
    let max = freqs.iter().copied().fold(1.0f32, f32::max);
    let mut guess = spec.clone();
    guess.rope.scaling = RopeScaling::Llama3 {
        factor: f64::from(max),
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position: 8192,
    };
    if llama3_rope_factors(&guess) == freqs {
        return Ok(guess);
    }
    Err(Error::Unsupported(
        "rope_freqs.weight is not Llama 3.1 scaling; an HF config cannot express it".into(),
    ))
}

fn reference(e: wharf_reference::Error) -> Error {
    Error::Reference(e.to_string())
}
