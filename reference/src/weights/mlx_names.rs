//! HF names over mlx-lm's DeepSeek layout.
//!
//! mlx-lm's `models/deepseek_v3.py` `sanitize` stores routed experts stacked as
//! `mlp.switch_mlp.{gate,up,down}_proj.weight [experts, out, in]` and splits `kv_b_proj` into
//! `embed_q [heads, kv_lora_rank, qk_nope_head_dim]` (the key part, transposed per head) and
//! `unembed_out [heads, v_head_dim, kv_lora_rank]`. The forward pass reads HF names, so an MLX
//! folder gets aliases: each expert is a row range of its stack, and `kv_b_proj` rows are
//! reassembled per head.

use std::collections::HashMap;

use wharf_core::model::ModelSpec;

/// Where an HF weight lives in an MLX DeepSeek folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Alias {
    /// Rows `first ..` of a stacked expert tensor.
    Expert {
        /// The stacked tensor.
        stack: String,
        /// The expert's first row in the flattened stack.
        first: usize,
        /// `[rows, cols]` of one expert.
        shape: [usize; 2],
    },
    /// `kv_b_proj` rebuilt from `embed_q` and `unembed_out`.
    KvB {
        /// `embed_q` (`[heads, lora, nope]`).
        embed_q: String,
        /// `unembed_out` (`[heads, v, lora]`).
        unembed_out: String,
        /// Dimensions.
        heads: usize,
        /// Key (no rope) dimension per head.
        nope: usize,
        /// Value dimension per head.
        v: usize,
        /// Latent dimension.
        lora: usize,
    },
}

impl Alias {
    /// `[rows, cols]` of the HF weight.
    pub(crate) fn shape(&self) -> [usize; 2] {
        match self {
            Alias::Expert { shape, .. } => *shape,
            Alias::KvB {
                heads,
                nope,
                v,
                lora,
                ..
            } => [heads * (nope + v), *lora],
        }
    }
}

/// Aliases for every stacked expert and split `kv_b_proj` among `shapes` (logical name →
/// dims, outer first).
pub(crate) fn aliases(
    shapes: &HashMap<String, Vec<usize>>,
    spec: &ModelSpec,
) -> HashMap<String, Alias> {
    let mut out = HashMap::new();
    for (name, dims) in shapes {
        if let Some((prefix, proj)) = name.split_once(".mlp.switch_mlp.")
            && let [experts, rows, cols] = dims[..]
        {
            for e in 0..experts {
                out.insert(
                    format!("{prefix}.mlp.experts.{e}.{proj}"),
                    Alias::Expert {
                        stack: name.clone(),
                        first: e * rows,
                        shape: [rows, cols],
                    },
                );
            }
        }
        if let Some(prefix) = name.strip_suffix(".self_attn.embed_q.weight")
            && let Some(mla) = &spec.mla
        {
            let unembed_out = format!("{prefix}.self_attn.unembed_out.weight");
            if shapes.contains_key(&unembed_out) {
                out.insert(
                    format!("{prefix}.self_attn.kv_b_proj.weight"),
                    Alias::KvB {
                        embed_q: name.clone(),
                        unembed_out,
                        heads: spec.num_heads as usize,
                        nope: mla.qk_nope_head_dim as usize,
                        v: mla.v_head_dim as usize,
                        lora: mla.kv_lora_rank as usize,
                    },
                );
            }
        }
    }
    out
}
