//! DeepSeek's mixture of experts: routing, routed experts and shared experts.
//!
//! V3 (transformers `modeling_deepseek_v3.py`, `DeepseekV3MoE.route_tokens_to_experts`): sigmoid
//! scores; choice by scores + `e_score_correction_bias`; groups ranked by the sum of their two best
//! biased scores, the best `topk_group` groups kept (others filled with 0), top-k inside; weights
//! are the *unbiased* scores, optionally normalised (+1e-20), times `routed_scaling_factor`.
//! V2 (DeepSeek-V2 `modeling_deepseek.py`, `MoEGate.forward`): softmax scores; greedy top-k or
//! groups ranked by their best score; normalised when `norm_topk_prob`, else scaled.

use wharf_core::model::{Moe, Scoring, TopkMethod};

use crate::kernels::{matmul, softmax, swiglu};
use crate::weights::{Weights, whole};
use crate::{Error, Result};

/// Indices of the `k` largest values, largest first; ties go to the lower index.
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// The experts and weights chosen for one token from its router logits.
pub fn route(moe: &Moe, logits: &[f32], bias: Option<&[f32]>) -> Vec<(usize, f32)> {
    let e = logits.len();
    let k = moe.experts_per_token as usize;
    let scores: Vec<f32> = match moe.scoring {
        Scoring::Sigmoid => logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect(),
        Scoring::Softmax => {
            let mut s = logits.to_vec();
            softmax(&mut s);
            s
        }
    };
    let choice: Vec<f32> = match bias {
        Some(b) if moe.topk_method == TopkMethod::NoauxTc => {
            scores.iter().zip(b).map(|(s, b)| s + b).collect()
        }
        _ => scores.clone(),
    };
    let groups = (moe.n_group as usize).max(1);
    let per = e / groups;
    let masked = match moe.topk_method {
        TopkMethod::Greedy => choice,
        TopkMethod::GroupLimitedGreedy | TopkMethod::NoauxTc => {
            let group_score: Vec<f32> = choice
                .chunks(per.max(1))
                .map(|g| {
                    if moe.topk_method == TopkMethod::NoauxTc {
                        top_k(g, 2).iter().map(|&i| g[i]).sum()
                    } else {
                        g.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                    }
                })
                .collect();
            let keep = top_k(&group_score, moe.topk_group as usize);
            choice
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    if keep.contains(&(i / per.max(1))) {
                        c
                    } else {
                        0.0
                    }
                })
                .collect()
        }
    };
    let chosen = top_k(&masked, k);
    let mut w: Vec<f32> = chosen.iter().map(|&i| scores[i]).collect();
    let scale = moe.routed_scaling_factor as f32;
    match moe.scoring {
        Scoring::Sigmoid => {
            if moe.norm_topk_prob {
                let sum: f32 = w.iter().sum::<f32>() + 1e-20;
                w.iter_mut().for_each(|x| *x /= sum);
            }
            w.iter_mut().for_each(|x| *x *= scale);
        }
        Scoring::Softmax if k > 1 && moe.norm_topk_prob => {
            let sum: f32 = w.iter().sum::<f32>() + 1e-20;
            w.iter_mut().for_each(|x| *x /= sum);
        }
        Scoring::Softmax => w.iter_mut().for_each(|x| *x *= scale),
    }
    chosen.into_iter().zip(w).collect()
}

/// A SwiGLU MLP `down(silu(gate(x)) * up(x))` whose projections are `{prefix}.{gate,up,down}_proj`.
pub fn mlp(w: &dyn Weights, prefix: &str, x: &[f32], n: usize) -> Result<Vec<f32>> {
    let bias = w.spec().mlp_bias;
    let lin = |p: &str, x: &[f32]| {
        crate::kernels::linear(w, &format!("{prefix}.{p}_proj.weight"), x, n, bias)
    };
    let mut g = lin("gate", x)?;
    let u = lin("up", x)?;
    swiglu(&mut g, &u);
    lin("down", &g)
}

/// The MoE block of layer `layer` over `n` tokens `x` (`[n, hidden]`).
pub fn moe_block(w: &dyn Weights, layer: usize, x: &[f32], n: usize) -> Result<Vec<f32>> {
    let spec = w.spec();
    let moe = spec
        .moe
        .as_ref()
        .ok_or_else(|| Error::Spec("MoE layer without MoE parameters".into()))?;
    let hidden = spec.hidden_size as usize;
    let p = format!("model.layers.{layer}.mlp");
    let router = matmul(w, &format!("{p}.gate.weight"), x, n)?;
    let bias_name = format!("{p}.gate.e_score_correction_bias");
    let bias = match w.shape(&bias_name) {
        Some(_) => Some(whole(w, &bias_name)?),
        None => None,
    };
    let e = moe.n_routed_experts as usize;
    // Tokens per expert, with their weights, in token order.
    let mut assigned: Vec<Vec<(usize, f32)>> = vec![Vec::new(); e];
    for (t, logits) in router.chunks_exact(e).enumerate() {
        for (ex, wt) in route(moe, logits, bias.as_deref()) {
            if let Some(a) = assigned.get_mut(ex) {
                a.push((t, wt));
            }
        }
    }
    let mut out = vec![0f32; n * hidden];
    // Experts in index order, as transformers accumulates them.
    for (ex, toks) in assigned.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
        let xs: Vec<f32> = toks
            .iter()
            .flat_map(|&(t, _)| x[t * hidden..(t + 1) * hidden].iter().copied())
            .collect();
        let y = mlp(w, &format!("{p}.experts.{ex}"), &xs, toks.len())?;
        for (&(t, wt), row) in toks.iter().zip(y.chunks_exact(hidden)) {
            out[t * hidden..(t + 1) * hidden]
                .iter_mut()
                .zip(row)
                .for_each(|(o, v)| *o += wt * v);
        }
    }
    if moe.n_shared_experts > 0 {
        let shared = mlp(w, &format!("{p}.shared_experts"), x, n)?;
        out.iter_mut().zip(&shared).for_each(|(o, s)| *o += s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v3() -> Moe {
        Moe {
            n_routed_experts: 8,
            n_shared_experts: 1,
            experts_per_token: 2,
            moe_intermediate_size: 4,
            first_k_dense_replace: 1,
            moe_layer_freq: 1,
            n_group: 4,
            topk_group: 2,
            routed_scaling_factor: 2.5,
            norm_topk_prob: true,
            scoring: Scoring::Sigmoid,
            topk_method: TopkMethod::NoauxTc,
        }
    }

    #[test]
    fn noaux_tc_keeps_best_groups_and_weights_by_unbiased_scores() {
        // Group 0 (experts 0,1) has the single best expert but group 3 the best pair.
        let logits = [3.0, -3.0, 0.0, 0.0, -1.0, -1.0, 1.0, 1.0];
        let bias = [0.0; 8];
        let r = route(&v3(), &logits, Some(&bias));
        let ids: Vec<usize> = r.iter().map(|x| x.0).collect();
        assert_eq!(ids, vec![0, 6]);
        let total: f32 = r.iter().map(|x| x.1).sum();
        assert!((total - 2.5).abs() < 1e-6);
        // A bias changes the choice but not the weights' source.
        let mut bias = [0.0; 8];
        bias[2] = 10.0;
        let r = route(&v3(), &logits, Some(&bias));
        assert_eq!(r.first().map(|x| x.0), Some(2));
    }

    #[test]
    fn softmax_greedy_scales_without_norm() {
        let mut m = v3();
        m.scoring = Scoring::Softmax;
        m.topk_method = TopkMethod::Greedy;
        m.norm_topk_prob = false;
        m.routed_scaling_factor = 1.0;
        let r = route(&m, &[0.0; 8], None);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!((r[0].1 - 0.125).abs() < 1e-6);
    }
}
