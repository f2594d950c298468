//! Which tensor-parallel sizes can load an FP8 block-quantized folder.
//!
//! The rules are vLLM's (`vllm/model_executor/layers/quantization/utils/fp8_utils.py`
//! `validate_fp8_block_shape`, and the block checks of `fp8.py`'s MoE method):
//! a column-parallel layer's output slice per rank and a row-parallel layer's input slice per
//! rank must be multiples of the 128 block when tp > 1; merged layers (q/k/v, gate/up, DeepSeek's
//! fused q_a/kv_a) need every part but the last to be a multiple even at tp = 1 (DeepSeek's
//! `kv_a_proj_with_mqa`, 576 rows, is the last part of its fused layer); routed experts
//! need their intermediate slice per rank to be a multiple at every tp; attention heads must
//! split evenly.

use serde::Serialize;
use wharf_core::model::ModelSpec;
use wharf_core::{DType, TensorMeta};

const BLOCK: u64 = 128;

/// One tensor-parallel size and what stops it.
#[derive(Debug, Clone, Serialize)]
pub struct TpReport {
    /// Ranks.
    pub tp: u64,
    /// True when nothing stops it.
    pub ok: bool,
    /// Why not, one line per tensor or rule.
    pub problems: Vec<String>,
}

/// How vLLM splits a linear layer.
enum Role {
    /// Output rows split across ranks; `merged` when fused with sibling layers.
    Column { merged: bool, last: bool },
    /// Input columns split across ranks.
    Row,
    /// Not split, but fused with a sibling (DeepSeek `fused_qkv_a_proj`).
    ReplicatedMerged { last: bool },
    /// A routed expert of a fused MoE layer; `down` when its input is the intermediate size.
    Expert { down: bool },
}

fn role(name: &str, mla: bool, q_lora: bool) -> Option<Role> {
    let stem = name.strip_suffix(".weight").unwrap_or(name);
    let last = stem.rsplit('.').next().unwrap_or(stem);
    if stem.contains(".mlp.experts.") {
        return Some(Role::Expert {
            down: last == "down_proj",
        });
    }
    Some(match last {
        // MLA without q compression has a plain column-parallel q_proj.
        "q_proj" if mla => Role::Column {
            merged: false,
            last: true,
        },
        "q_proj" => Role::Column {
            merged: true,
            last: false,
        },
        "k_proj" => Role::Column {
            merged: true,
            last: false,
        },
        "v_proj" => Role::Column {
            merged: true,
            last: true,
        },
        "q_b_proj" | "kv_b_proj" => Role::Column {
            merged: false,
            last: true,
        },
        "gate_proj" => Role::Column {
            merged: true,
            last: false,
        },
        "up_proj" => Role::Column {
            merged: true,
            last: true,
        },
        "o_proj" | "down_proj" => Role::Row,
        "q_a_proj" => Role::ReplicatedMerged { last: false },
        // The last part of `fused_qkv_a_proj` [q_lora, kv_lora + rope] (a partial block is
        // allowed there: the released V3/R1 weights have one, 576 rows), or a plain replicated
        // Linear without q compression.
        "kv_a_proj_with_mqa" if q_lora => Role::ReplicatedMerged { last: true },
        "kv_a_proj_with_mqa" => return None,
        _ => return None,
    })
}

/// Reports every size of `sizes` for the FP8 tensors of `tensors` (HF names, outer-first).
pub fn tp_report(spec: &ModelSpec, tensors: &[TensorMeta], sizes: &[u64]) -> Vec<TpReport> {
    sizes
        .iter()
        .map(|&tp| {
            let problems = problems(spec, tensors, tp);
            TpReport {
                tp,
                ok: problems.is_empty(),
                problems,
            }
        })
        .collect()
}

fn problems(spec: &ModelSpec, tensors: &[TensorMeta], tp: u64) -> Vec<String> {
    let mut out = Vec::new();
    if !spec.num_heads.is_multiple_of(tp) {
        out.push(format!(
            "{} attention heads do not split over {tp} ranks",
            spec.num_heads
        ));
    }
    let kv = spec.num_kv_heads;
    if spec.mla.is_none() && !kv.is_multiple_of(tp) && !tp.is_multiple_of(kv) {
        out.push(format!(
            "{kv} KV heads neither split over nor replicate to {tp} ranks"
        ));
    }
    let q_lora = spec.mla.as_ref().is_some_and(|m| m.q_lora_rank.is_some());
    for t in tensors.iter().filter(|t| t.dtype == DType::F8E4M3) {
        let dims = t.shape.dims();
        let (Some(&n), Some(&k)) = (dims.get(dims.len().wrapping_sub(2)), dims.last()) else {
            continue;
        };
        if let Some(why) =
            role(&t.name, spec.mla.is_some(), q_lora).and_then(|r| breaks(&r, n, k, tp))
        {
            out.push(format!("{}: {why}", t.name));
        }
    }
    out
}

fn breaks(role: &Role, n: u64, k: u64, tp: u64) -> Option<String> {
    let split = |size: u64, what: &str| -> Option<String> {
        if !size.is_multiple_of(tp) {
            return Some(format!("{what} {size} does not split over {tp} ranks"));
        }
        let part = size / tp;
        (!part.is_multiple_of(BLOCK))
            .then(|| format!("{what} per rank {part} is not a multiple of {BLOCK}"))
    };
    match *role {
        Role::Column { merged, last } => {
            if tp > 1 {
                split(n, "output size")
            } else if merged && !last && !n.is_multiple_of(BLOCK) {
                Some(format!(
                    "merged output part {n} is not a multiple of {BLOCK}"
                ))
            } else {
                None
            }
        }
        Role::Row => (tp > 1).then(|| split(k, "input size")).flatten(),
        Role::ReplicatedMerged { last } => (!last && !n.is_multiple_of(BLOCK))
            .then(|| format!("merged output part {n} is not a multiple of {BLOCK}")),
        Role::Expert { down } => split(if down { k } else { n }, "expert intermediate size"),
    }
}
