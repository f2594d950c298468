//! Causal self-attention with a KV cache: grouped-query attention (Llama, Qwen2, Mistral) and
//! DeepSeek's multi-head latent attention, which differs only in how q, k and v are made.
//!
//! Both follow transformers' eager path (`eager_attention_forward`): scores `q·k · scale`,
//! softmax in f32, weighted sum of values. MLA runs in its expanded form
//! (`DeepseekV3Attention.forward`): the latent `kv_b_proj` output is split into per-head
//! `k_nope` and `v`, and one shared rotary key is appended to every head.

use rayon::prelude::*;

use crate::kernels::{dot, linear, rms_norm, softmax};
use crate::rope::RopeTable;
use crate::weights::{Weights, whole};
use crate::{Error, Result};

/// Keys and values of one layer for every position seen so far, `[pos, kv_heads, dim]`.
#[derive(Debug, Clone, Default)]
pub struct LayerCache {
    k: Vec<f32>,
    v: Vec<f32>,
}

/// Head layout and rotary table of one model's attention.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    pub heads: usize,
    pub kv_heads: usize,
    pub qk_dim: usize,
    pub v_dim: usize,
    pub rope_dim: usize,
    pub scale: f32,
    pub window: Option<usize>,
    pub rope: RopeTable,
}

/// Attention of `n` new queries at positions `start ..` over the cache (which already holds them).
fn attend(q: &[f32], cache: &LayerCache, start: usize, n: usize, g: &Geometry) -> Vec<f32> {
    let group = (g.heads / g.kv_heads.max(1)).max(1);
    let (kw, vw) = (g.kv_heads * g.qk_dim, g.kv_heads * g.v_dim);
    let mut out = vec![0f32; n * g.heads * g.v_dim];
    out.par_chunks_mut(g.heads * g.v_dim)
        .enumerate()
        .for_each(|(t, orow)| {
            let p = start + t;
            let lo = g.window.map_or(0, |w| (p + 1).saturating_sub(w));
            for h in 0..g.heads {
                let kvh = h / group;
                let qh = &q[(t * g.heads + h) * g.qk_dim..][..g.qk_dim];
                let mut s: Vec<f32> = (lo..=p)
                    .map(|j| dot(qh, &cache.k[j * kw + kvh * g.qk_dim..][..g.qk_dim]) * g.scale)
                    .collect();
                softmax(&mut s);
                let o = &mut orow[h * g.v_dim..][..g.v_dim];
                for (j, w) in (lo..=p).zip(&s) {
                    let vrow = &cache.v[j * vw + kvh * g.v_dim..][..g.v_dim];
                    o.iter_mut().zip(vrow).for_each(|(o, v)| *o += w * v);
                }
            }
        });
    out
}

/// Rotates the last `rope_dim` values (`first = false`) or the first (`first = true`) of each
/// `dim`-wide head in `x` (`[n, heads, dim]`), token `t` at position `start + t`.
fn rotate(
    x: &mut [f32],
    dim: usize,
    rope_dim: usize,
    heads: usize,
    start: usize,
    rope: &RopeTable,
    first: bool,
) {
    for (i, head) in x.chunks_exact_mut(dim).enumerate() {
        let pos = start + i / heads.max(1);
        let part = if first {
            &mut head[..rope_dim]
        } else {
            &mut head[dim - rope_dim..]
        };
        rope.apply(part, pos);
    }
}

/// Standard (grouped-query) attention of layer `l`.
pub(crate) fn gqa(
    w: &dyn Weights,
    l: usize,
    x: &[f32],
    n: usize,
    start: usize,
    cache: &mut LayerCache,
    g: &Geometry,
) -> Result<Vec<f32>> {
    let rope = &g.rope;
    let spec = w.spec();
    let p = format!("model.layers.{l}.self_attn");
    let mut q = linear(w, &format!("{p}.q_proj.weight"), x, n, spec.qkv_bias)?;
    let mut k = linear(w, &format!("{p}.k_proj.weight"), x, n, spec.qkv_bias)?;
    let v = linear(w, &format!("{p}.v_proj.weight"), x, n, spec.qkv_bias)?;
    rotate(&mut q, g.qk_dim, g.rope_dim, g.heads, start, rope, true);
    rotate(&mut k, g.qk_dim, g.rope_dim, g.kv_heads, start, rope, true);
    cache.k.extend_from_slice(&k);
    cache.v.extend_from_slice(&v);
    let o = attend(&q, cache, start, n, g);
    linear(w, &format!("{p}.o_proj.weight"), &o, n, spec.o_bias)
}

/// Multi-head latent attention of layer `l` (DeepSeek V2/V3).
pub(crate) fn mla(
    w: &dyn Weights,
    l: usize,
    x: &[f32],
    n: usize,
    start: usize,
    cache: &mut LayerCache,
    g: &Geometry,
) -> Result<Vec<f32>> {
    let rope = &g.rope;
    let spec = w.spec();
    let m = spec
        .mla
        .as_ref()
        .ok_or_else(|| Error::Spec("MLA layer without MLA parameters".into()))?;
    let eps = spec.rms_norm_eps as f32;
    let (lora, nope) = (m.kv_lora_rank as usize, m.qk_nope_head_dim as usize);
    let p = format!("model.layers.{l}.self_attn");
    let mut q = match m.q_lora_rank {
        Some(_) => {
            let mut qa = linear(w, &format!("{p}.q_a_proj.weight"), x, n, false)?;
            rms_norm(
                &mut qa,
                &whole(w, &format!("{p}.q_a_layernorm.weight"))?,
                eps,
            );
            linear(w, &format!("{p}.q_b_proj.weight"), &qa, n, false)?
        }
        None => linear(w, &format!("{p}.q_proj.weight"), x, n, false)?,
    };
    rotate(&mut q, g.qk_dim, g.rope_dim, g.heads, start, rope, false);
    let ckv = linear(w, &format!("{p}.kv_a_proj_with_mqa.weight"), x, n, false)?;
    let width = lora + g.rope_dim;
    let mut latent: Vec<f32> = ckv
        .chunks_exact(width)
        .flat_map(|r| r[..lora].iter().copied())
        .collect();
    rms_norm(
        &mut latent,
        &whole(w, &format!("{p}.kv_a_layernorm.weight"))?,
        eps,
    );
    let kv = linear(w, &format!("{p}.kv_b_proj.weight"), &latent, n, false)?;
    let per_head = nope + g.v_dim;
    for (t, (row, c)) in kv
        .chunks_exact(g.heads * per_head)
        .zip(ckv.chunks_exact(width))
        .enumerate()
    {
        let mut k_rot = c[lora..].to_vec();
        rope.apply(&mut k_rot, start + t);
        for head in row.chunks_exact(per_head) {
            cache.k.extend_from_slice(&head[..nope]);
            cache.k.extend_from_slice(&k_rot);
            cache.v.extend_from_slice(&head[nope..]);
        }
    }
    let o = attend(&q, cache, start, n, g);
    linear(w, &format!("{p}.o_proj.weight"), &o, n, false)
}
