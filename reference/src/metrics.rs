//! Comparison metrics over logits: pure functions, no I/O.
//!
//! All probabilities are computed in f64 from f32 logits with a max-shifted log-sum-exp.

/// Index of the largest value (ties: the lowest index).
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Log-sum-exp of a logit row, in f64 (the log-normaliser of its softmax).
pub fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + row
        .iter()
        .map(|&x| (x as f64 - max).exp())
        .sum::<f64>()
        .ln()
}

/// Log-probabilities of a logit row.
pub fn log_softmax(row: &[f32]) -> Vec<f64> {
    let lse = log_sum_exp(row);
    row.iter().map(|&x| x as f64 - lse).collect()
}

/// The `k` highest `(id, logit)` entries of a row, highest first (ties: lowest id).
pub fn top_k(row: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..row.len() as u32).collect();
    idx.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
    idx.into_iter()
        .take(k)
        .map(|i| (i, row[i as usize]))
        .collect()
}

/// KL(P‖Q) in nats between the distributions of two full logit rows of the same vocabulary.
pub fn kl_full(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let (lp, lq) = (log_softmax(p_logits), log_softmax(q_logits));
    lp.iter()
        .zip(&lq)
        .map(|(a, b)| a.exp() * (a - b))
        .sum::<f64>()
        .max(0.0)
}

/// KL(P‖Q) estimated from P's top-k `(id, logit)` entries and Q's full logits.
///
/// P is known only on its top-k ids, so P's probabilities there need its log-normaliser, which
/// the top-k entries do not carry: `p_log_norm` supplies it when known (the log-sum-exp of P's
/// full row, e.g. stored beside a bundle golden); `None` normalises over the top-k alone.
/// The ids outside the top-k are lumped into one bucket on both sides, with masses
/// `1 - Σ p_i` and `1 - Σ q_i`. By the log-sum inequality (grouping outcomes can only lose
/// information), the result is a **lower bound** on the true KL(P‖Q) when `p_log_norm` is
/// exact, and exact when P puts no mass outside its top-k.
pub fn kl_from_topk(p_top: &[(u32, f32)], p_log_norm: Option<f64>, q_logits: &[f32]) -> f64 {
    let lq = log_softmax(q_logits);
    let norm = p_log_norm.unwrap_or_else(|| {
        let v: Vec<f32> = p_top.iter().map(|x| x.1).collect();
        log_sum_exp(&v)
    });
    let mut kl = 0f64;
    let (mut p_in, mut q_in) = (0f64, 0f64);
    for &(id, logit) in p_top {
        let Some(&lqi) = lq.get(id as usize) else {
            continue;
        };
        let lpi = logit as f64 - norm;
        let pi = lpi.exp();
        kl += pi * (lpi - lqi);
        p_in += pi;
        q_in += lqi.exp();
    }
    let (p_tail, q_tail) = ((1.0 - p_in).max(0.0), (1.0 - q_in).max(0.0));
    if p_tail > 1e-12 {
        kl += p_tail * (p_tail.ln() - q_tail.max(1e-300).ln());
    }
    kl.max(0.0)
}

/// Fraction of positions whose argmax agrees between two `[n, vocab]` logit arrays.
pub fn top1_agreement(a: &[f32], b: &[f32], vocab: usize) -> f64 {
    let rows = a.len().min(b.len()) / vocab.max(1);
    if rows == 0 {
        return 0.0;
    }
    let same = a
        .chunks_exact(vocab)
        .zip(b.chunks_exact(vocab))
        .filter(|(x, y)| argmax(x) == argmax(y))
        .count();
    same as f64 / rows as f64
}

/// Perplexity of `ids[1..]` under logits `[n, vocab]` where row `i` predicts `ids[i + 1]`:
/// `exp(mean(-log p(ids[i+1] | row i)))`. `None` with fewer than two ids.
pub fn perplexity(logits: &[f32], vocab: usize, ids: &[u32]) -> Option<f64> {
    let mut nll = 0f64;
    let mut count = 0usize;
    for (row, &next) in logits.chunks_exact(vocab.max(1)).zip(ids.iter().skip(1)) {
        let lse = log_sum_exp(row);
        nll += lse - *row.get(next as usize)? as f64;
        count += 1;
    }
    (count > 0).then(|| (nll / count as f64).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_of_identical_rows_is_zero_and_positive_otherwise() {
        let a = [1.0, 2.0, 3.0, 0.5];
        assert!(kl_full(&a, &a) < 1e-12);
        let b = [3.0, 2.0, 1.0, 0.5];
        assert!(kl_full(&a, &b) > 0.1);
    }

    #[test]
    fn topk_kl_bounds_full_kl_from_below_and_is_exact_with_all_ids() {
        let p = [2.0, 1.5, 0.3, -1.0, -2.0, 0.0];
        let q = [1.0, 2.0, 0.0, -0.5, -1.0, 0.2];
        let full = kl_full(&p, &q);
        let norm = log_sum_exp(&p);
        for k in 1..=6 {
            let est = kl_from_topk(&top_k(&p, k), Some(norm), &q);
            assert!(est <= full + 1e-12, "k={k}: {est} > {full}");
        }
        assert!((kl_from_topk(&top_k(&p, 6), None, &q) - full).abs() < 1e-12);
    }

    #[test]
    fn perplexity_of_uniform_logits_is_vocab() {
        let logits = vec![0.0f32; 3 * 8];
        let ppl = perplexity(&logits, 8, &[1, 2, 3, 4]).unwrap();
        assert!((ppl - 8.0).abs() < 1e-9);
        assert_eq!(top1_agreement(&logits, &logits, 8), 1.0);
        assert_eq!(top_k(&[0.1, 0.9, 0.5], 2), vec![(1, 0.9), (2, 0.5)]);
    }
}
