//! Preflight: before any byte is written, does the planned bundle fit the target's memory with
//! its KV cache, and can its runtime load it the way the target intends?

use serde::Serialize;
use wharf_core::TensorMeta;
use wharf_core::model::ModelSpec;

use crate::profile::TargetProfile;
use crate::tp::{TpReport, tp_report};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// What preflight was asked to check.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The target.
    pub profile: &'a TargetProfile,
    /// The model.
    pub spec: &'a ModelSpec,
    /// Every output tensor with its storage type (HF names for folder targets, GGUF names for
    /// GGUF targets).
    pub tensors: &'a [TensorMeta],
    /// Context length the KV cache must hold.
    pub ctx: u64,
    /// Memory of the board or GPU, bytes (`--memory`); the profile's default otherwise.
    pub memory: Option<u64>,
}

/// Preflight's findings.
#[derive(Debug, Clone, Serialize)]
pub struct Preflight {
    /// Bytes of weights as written.
    pub weight_bytes: u64,
    /// KV cache bytes at `ctx` (f16/bf16 cache, one sequence).
    pub kv_cache_bytes: u64,
    /// Runtime buffers, estimated.
    pub overhead_bytes: u64,
    /// Memory needed per device (per GPU rank at the smallest working tp for GPU targets).
    pub need_bytes: u64,
    /// Memory usable on the checked board or GPU.
    pub usable_bytes: u64,
    /// Each board or GPU size of the profile and whether the bundle fits it.
    pub boards: Vec<BoardFit>,
    /// Tensor-parallel sizes and why the ones that fail do (GPU targets).
    pub tp: Vec<TpReport>,
    /// Problems that stop the export.
    pub errors: Vec<String>,
    /// Things the user should know.
    pub warnings: Vec<String>,
}

/// Whether the bundle fits one memory size.
#[derive(Debug, Clone, Serialize)]
pub struct BoardFit {
    /// Memory, GiB.
    pub gib: u64,
    /// True when weights + KV cache + overhead fit the usable part.
    pub fits: bool,
}

/// Runs every check of the profile.
pub fn check(req: &Request<'_>) -> Preflight {
    let weight_bytes: u64 = req.tensors.iter().filter_map(|t| t.nbytes().ok()).sum();
    let kv = kv_cache_bytes(req.spec, req.ctx);
    let overhead = 64 * MIB + weight_bytes / 32;
    let tp = if req.profile.tp_sizes.is_empty() {
        Vec::new()
    } else {
        tp_report(req.spec, req.tensors, req.profile.tp_sizes)
    };
    let ranks = tp.iter().find(|r| r.ok).map_or(1, |r| r.tp);
    let need = per_device(weight_bytes, kv, overhead, ranks, req.spec.mla.is_some());
    // What the OS or runtime leaves of `bytes` of board or GPU memory.
    let usable = |bytes: u64| bytes / 100 * (100 - req.profile.reserved_percent);
    let memory = req.memory.unwrap_or(req.profile.default_memory_gib * GIB);
    let usable_bytes = usable(memory);
    let boards = req
        .profile
        .memory_gib
        .iter()
        .map(|&gib| BoardFit {
            gib,
            fits: need <= usable(gib * GIB),
        })
        .collect();
    let mut errors = Vec::new();
    if need > usable_bytes {
        errors.push(format!(
            "needs {} (weights {}, KV cache at ctx {} {}, runtime {}) but {} of {} is usable on {}",
            human(need),
            human(weight_bytes.div_ceil(ranks)),
            req.ctx,
            human(kv),
            human(overhead),
            human(usable_bytes),
            human(memory),
            req.profile.name
        ));
    }
    if !tp.is_empty() && !tp.iter().any(|r| r.ok) {
        let first = tp.iter().find_map(|r| Some((r.tp, r.problems.first()?)));
        let why = first.map_or(String::new(), |(n, p)| format!(" (tp {n}: {p})"));
        errors.push(format!(
            "no tensor-parallel size works: vLLM's FP8 block loader cannot split these weights \
             into 128x128 blocks{why}; see the tp report. Per-channel FP8 has no block shape: \
             `wharf quantize SRC --scheme fp8-channel` writes a folder vLLM loads at any tp"
        ));
    }
    let mut warnings = Vec::new();
    if req.profile.repack {
        warnings.extend(repack_warnings(req.tensors));
    }
    Preflight {
        weight_bytes,
        kv_cache_bytes: kv,
        overhead_bytes: overhead,
        need_bytes: need,
        usable_bytes,
        boards,
        tp,
        errors,
        warnings,
    }
}

fn per_device(weights: u64, kv: u64, overhead: u64, ranks: u64, mla: bool) -> u64 {
    // vLLM replicates the MLA latent cache on every rank and splits ordinary KV heads.
    let kv_rank = if mla { kv } else { kv.div_ceil(ranks) };
    weights.div_ceil(ranks) + kv_rank + overhead
}

/// KV cache bytes for one sequence of `ctx` tokens with a 2-byte cache.
///
/// MLA caches the compressed latent plus the rope key per token (`kv_lora_rank +
/// qk_rope_head_dim`), as llama.cpp and vLLM do; other models cache K and V per KV head.
pub fn kv_cache_bytes(spec: &ModelSpec, ctx: u64) -> u64 {
    let per_token_layer = match &spec.mla {
        Some(m) => m.kv_lora_rank + m.qk_rope_head_dim,
        None => 2 * spec.num_kv_heads * spec.head_dim,
    };
    2 * per_token_layer * spec.num_layers * ctx
}

/// llama.cpp's Arm runtime repack (`ggml/src/ggml-cpu/repack.cpp`) needs `ne1 % 4` for Q4_0
/// (4x4 on the A76's dotprod) and `ne1 % 8` for Q4_K/Q5_K/Q6_K (8x4).
fn repack_warnings(tensors: &[TensorMeta]) -> Vec<String> {
    use wharf_core::DType;
    let mut out = Vec::new();
    for t in tensors {
        let dims = t.shape.dims();
        let Some(&ne1) = dims.len().checked_sub(2).and_then(|i| dims.get(i)) else {
            continue;
        };
        let need = match t.dtype {
            DType::Q4_0 => 4,
            DType::Q4K | DType::Q5K | DType::Q6K => 8,
            _ => continue,
        };
        if !ne1.is_multiple_of(need) {
            out.push(format!(
                "{} ({}, {ne1} rows) will not be repacked: rows are not a multiple of {need}",
                t.name, t.dtype
            ));
        }
    }
    out
}

/// Bytes as a short human string.
pub fn human(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.2} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// Parses `8GB`, `512MiB`, `16G`, `1024` (bytes).
pub fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.trim().parse().ok()?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => GIB << 10,
        _ => return None,
    };
    (value.is_finite() && value >= 0.0).then_some((value * scale as f64) as u64)
}
