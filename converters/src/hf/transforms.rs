//! The value rearrangements of the HF → GGUF conversion, each a pure function of f32 values.

use wharf_core::model::{ModelSpec, RopeScaling};

use crate::pipeline::Transform;

/// llama.cpp's `LlamaModel.permute`: within each head of `rows / heads` rows, row
/// `i * half + j` moves to `2 * j + i` (HF's rotate-half layout → GGML's interleaved pairs).
pub fn permute_rows(rows: u64, cols: u64, heads: u64) -> Transform {
    let (rows, cols, heads) = (rows as usize, cols as usize, heads.max(1) as usize);
    Box::new(move |v: &[f32]| {
        let hd = rows / heads;
        let half = hd / 2;
        let mut out = vec![0f32; v.len()];
        for h in 0..heads {
            for i in 0..2 {
                for j in 0..half {
                    let (src, dst) = (h * hd + i * half + j, h * hd + 2 * j + i);
                    if let (Some(s), Some(d)) = (
                        v.get(src * cols..(src + 1) * cols),
                        out.get_mut(dst * cols..(dst + 1) * cols),
                    ) {
                        d.copy_from_slice(s);
                    }
                }
            }
        }
        out
    })
}

/// One half of DeepSeek's `kv_b_proj` `[heads * (nope + v), lora]`: `attn_k_b` as
/// `[heads, lora, nope]` (transposed) or `attn_v_b` as `[heads, v, lora]`.
pub fn kv_b_part(heads: u64, nope: u64, v: u64, lora: u64, k: bool) -> Transform {
    let (heads, nope, vd, lora) = (heads as usize, nope as usize, v as usize, lora as usize);
    Box::new(move |w: &[f32]| {
        let per_head = nope + vd;
        let at = |h: usize, r: usize, l: usize| {
            w.get((h * per_head + r) * lora + l).copied().unwrap_or(0.0)
        };
        let mut out = Vec::with_capacity(heads * lora * if k { nope } else { vd });
        for h in 0..heads {
            if k {
                for l in 0..lora {
                    out.extend((0..nope).map(|n| at(h, n, l)));
                }
            } else {
                for d in 0..vd {
                    out.extend((0..lora).map(|l| at(h, nope + d, l)));
                }
            }
        }
        out
    })
}

/// `rope_freqs.weight` for llama3 rope scaling (`conversion/llama.py`
/// `generate_extra_tensors`), computed in f32 as torch does there.
pub fn llama3_rope_factors(spec: &ModelSpec) -> Vec<f32> {
    let RopeScaling::Llama3 {
        factor,
        low_freq_factor,
        high_freq_factor,
        original_max_position,
    } = spec.rope.scaling
    else {
        return Vec::new();
    };
    let dim = spec.head_dim as usize;
    let base = spec.rope.theta as f32;
    let old = original_max_position as f32;
    let (low, high, factor) = (
        low_freq_factor as f32,
        high_freq_factor as f32,
        factor as f32,
    );
    let low_wavelen = old / low;
    let high_wavelen = old / high;
    let two_pi = std::f32::consts::TAU;
    (0..dim)
        .step_by(2)
        .map(|i| {
            let freq = 1.0f32 / base.powf(i as f32 / dim as f32);
            let wavelen = two_pi / freq;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect()
}
