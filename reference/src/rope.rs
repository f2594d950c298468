//! Rotary position embeddings: the frequency table for each scaling rule and its application.
//!
//! Frequencies follow transformers `modeling_rope_utils.py` (`_compute_default_rope_parameters`,
//! `_compute_linear_scaling_rope_parameters`, `_compute_llama3_parameters`,
//! `_compute_yarn_parameters`); llama.cpp's `rope_freqs.weight` divisors are the same llama3
//! rule precomputed (`ggml_rope_ext` divides each frequency by its factor).

use wharf_core::model::{ModelSpec, RopeScaling};

/// The rotary table of one model.
#[derive(Debug, Clone)]
pub struct RopeTable {
    inv_freq: Vec<f32>,
    /// Multiplies cos and sin (YaRN's `attention_factor`; 1 otherwise).
    attn_factor: f32,
    interleaved: bool,
}

/// YaRN's magnitude correction `0.1 · m · ln(s) + 1` (1 for `s ≤ 1`).
pub fn yarn_mscale(scale: f64, m: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * m * scale.ln() + 1.0
    }
}

impl RopeTable {
    /// The table for `spec`; `factors` are llama.cpp frequency divisors when the file has them.
    pub fn new(spec: &ModelSpec, factors: Option<&[f32]>) -> Self {
        let dim = spec.rope.dim as usize;
        let base = spec.rope.theta;
        let plain: Vec<f64> = (0..dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f64 / dim as f64))
            .collect();
        let mut attn_factor = 1.0;
        let inv: Vec<f64> = match spec.rope.scaling {
            RopeScaling::None => plain,
            RopeScaling::Linear { factor } => plain.iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position,
            } => {
                let old = original_max_position as f64;
                let (low_wl, high_wl) = (old / low_freq_factor, old / high_freq_factor);
                plain
                    .iter()
                    .map(|&f| {
                        let wavelen = std::f64::consts::TAU / f;
                        if wavelen < high_wl {
                            f
                        } else if wavelen > low_wl {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
            RopeScaling::Yarn {
                factor,
                original_max_position,
                beta_fast,
                beta_slow,
                mscale,
                mscale_all_dim,
            } => {
                attn_factor = if mscale != 0.0 && mscale_all_dim != 0.0 {
                    yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim)
                } else {
                    yarn_mscale(factor, 1.0)
                } as f32;
                yarn_inv_freq(
                    &plain,
                    dim,
                    base,
                    factor,
                    original_max_position,
                    beta_fast,
                    beta_slow,
                )
            }
        };
        let inv_freq = inv
            .iter()
            .enumerate()
            .map(|(i, &f)| {
                let div = factors.and_then(|d| d.get(i)).copied().unwrap_or(1.0);
                (f as f32) / div
            })
            .collect();
        RopeTable {
            inv_freq,
            attn_factor,
            interleaved: spec.rope.interleaved,
        }
    }

    /// Rotates one head's rotary part `x` (length = rotary dim) to position `pos`.
    ///
    /// Halves pair `x[i]` with `x[i + d/2]` (HF `rotate_half`); interleaved pairs `x[2i]` with
    /// `x[2i+1]` (DeepSeek's `rope_interleave`, whose de-interleave before `rotate_half` permutes
    /// q and k alike and so leaves every dot product unchanged).
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let half = self.inv_freq.len();
        for (i, f) in self.inv_freq.iter().enumerate() {
            let angle = pos as f32 * f;
            let (c, s) = (
                angle.cos() * self.attn_factor,
                angle.sin() * self.attn_factor,
            );
            let (a, b) = if self.interleaved {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + half)
            };
            if let (Some(&x1), Some(&x2)) = (x.get(a), x.get(b)) {
                x[a] = x1 * c - x2 * s;
                x[b] = x2 * c + x1 * s;
            }
        }
    }
}

/// YaRN's blend of interpolated and extrapolated frequencies (`_compute_yarn_parameters`, with
/// its default `truncate = true`).
fn yarn_inv_freq(
    plain: &[f64],
    dim: usize,
    base: f64,
    factor: f64,
    orig: u64,
    beta_fast: f64,
    beta_slow: f64,
) -> Vec<f64> {
    let correction_dim = |rot: f64| {
        (dim as f64 * (orig as f64 / (rot * std::f64::consts::TAU)).ln()) / (2.0 * base.ln())
    };
    let low = correction_dim(beta_fast).floor().max(0.0);
    let high = correction_dim(beta_slow).ceil().min(dim as f64 - 1.0);
    let high = if low == high { high + 0.001 } else { high };
    plain
        .iter()
        .enumerate()
        .map(|(i, &extra)| {
            let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
            let extrapolation = 1.0 - ramp;
            let inter = extra / factor;
            inter * (1.0 - extrapolation) + extra * extrapolation
        })
        .collect()
}

/// Scale of the attention logits: `1/sqrt(qk_head_dim)`, times `mscale²` for DeepSeek YaRN
/// (transformers `DeepseekV3Attention.__init__`).
pub fn softmax_scale(spec: &ModelSpec) -> f32 {
    let mut scale = 1.0 / (spec.qk_head_dim() as f64).sqrt();
    if let RopeScaling::Yarn {
        factor,
        mscale_all_dim,
        ..
    } = spec.rope.scaling
        && spec.mla.is_some()
        && mscale_all_dim != 0.0
    {
        let m = yarn_mscale(factor, mscale_all_dim);
        scale *= m * m;
    }
    scale as f32
}
