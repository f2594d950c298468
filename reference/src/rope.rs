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

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_core::model::{Rope, RopeScaling};

    fn spec(scaling: RopeScaling) -> ModelSpec {
        let mut s = ModelSpec {
            arch: wharf_core::model::Architecture::Llama,
            vocab_size: 8,
            hidden_size: 64,
            intermediate_size: 8,
            num_layers: 1,
            num_heads: 1,
            num_kv_heads: 1,
            head_dim: 64,
            rms_norm_eps: 1e-6,
            max_position_embeddings: 64,
            rope: Rope {
                theta: 10_000.0,
                dim: 64,
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
            bos_token_id: None,
            eos_token_id: None,
        };
        s.rope.scaling = scaling;
        s
    }

    fn yarn(factor: f64) -> RopeScaling {
        RopeScaling::Yarn {
            factor,
            original_max_position: 4096,
            beta_fast: 32.0,
            beta_slow: 1.0,
            mscale: 1.0,
            mscale_all_dim: 1.0,
        }
    }

    #[test]
    fn yarn_keeps_fast_dims_and_interpolates_slow_ones() {
        let plain = RopeTable::new(&spec(RopeScaling::None), None);
        let y1 = RopeTable::new(&spec(yarn(1.0)), None);
        assert_eq!(plain.inv_freq, y1.inv_freq);
        let y = RopeTable::new(&spec(yarn(40.0)), None);
        assert_eq!(y.inv_freq.first(), plain.inv_freq.first());
        let (last, plain_last) = (y.inv_freq[31], plain.inv_freq[31]);
        assert!((last * 40.0 - plain_last).abs() <= plain_last * 1e-6);
        // mscale == mscale_all_dim: no cos/sin scaling, logits scaled by mscale².
        assert_eq!(y.attn_factor, 1.0);
        let mut s = spec(yarn(40.0));
        s.mla = Some(wharf_core::model::Mla {
            q_lora_rank: None,
            kv_lora_rank: 8,
            qk_nope_head_dim: 0,
            qk_rope_head_dim: 64,
            v_head_dim: 8,
        });
        let m = 0.1 * 40f64.ln() + 1.0;
        assert!((softmax_scale(&s) as f64 - m * m / 8.0).abs() < 1e-6);
    }

    #[test]
    fn rotation_preserves_norm_and_pairs_as_configured() {
        let mut s = spec(RopeScaling::None);
        let t = RopeTable::new(&s, None);
        let mut x: Vec<f32> = (0..64).map(|i| i as f32 * 0.1).collect();
        let n0: f32 = x.iter().map(|v| v * v).sum();
        t.apply(&mut x, 7);
        let n1: f32 = x.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-3 * n0);
        // Position 0 is the identity; interleaving changes which elements pair up.
        s.rope.interleaved = true;
        let ti = RopeTable::new(&s, None);
        let mut a = vec![1.0f32, 0.0, 0.0, 0.0];
        let mut b = a.clone();
        t.apply(&mut a, 1);
        ti.apply(&mut b, 1);
        assert_ne!(a, b);
    }
}
