//! The golden a bundle carries (`reference.json`) and the metrics of a model against it.
//!
//! The golden is recorded from the full-precision source: for every prompt position the top-k
//! `(id, logit)` entries and the log-sum-exp of the whole row (so the top-k probabilities are
//! exact), plus the source's greedy continuation. A bundle's model is then measured against it
//! without the 37 GiB logits file a full comparison would need.

use serde::{Deserialize, Serialize};
use wharf_manifests::{Metrics, Thresholds};
use wharf_reference::{Model, metrics};

use crate::{Error, Result};

/// The golden's schema name.
pub const GOLDEN_SCHEMA: &str = "wharf.golden/v1";

/// Largest golden accepted when reading, in bytes.
pub const MAX_GOLDEN_BYTES: u64 = 64 << 20;

/// `reference.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Golden {
    /// Always [`GOLDEN_SCHEMA`].
    pub schema: String,
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Entries kept per position.
    pub top_k: usize,
    /// One entry per prompt position.
    pub positions: Vec<Position>,
    /// The source's greedy continuation of the prompt.
    pub greedy: Vec<u32>,
}

/// The source's view of one position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// Log-sum-exp of the full logit row.
    pub log_norm: f64,
    /// The top-k `[id, logit]` entries, highest first.
    pub top: Vec<(u32, f32)>,
}

impl Position {
    /// The source's lead of its best logit over the second, nats.
    pub fn margin(&self) -> f64 {
        match self.top.as_slice() {
            [a, b, ..] => f64::from(a.1) - f64::from(b.1),
            _ => f64::INFINITY,
        }
    }
}

impl Golden {
    /// Runs the source model on `prompt_ids` and records the golden.
    pub fn record(
        source: &Model,
        prompt_ids: &[u32],
        top_k: usize,
        max_new: usize,
    ) -> Result<Self> {
        let logits = source.logits(prompt_ids).map_err(reference)?;
        let positions = (0..logits.n_pos)
            .filter_map(|i| logits.row(i))
            .map(|row| Position {
                log_norm: metrics::log_sum_exp(row),
                top: metrics::top_k(row, top_k),
            })
            .collect();
        Ok(Golden {
            schema: GOLDEN_SCHEMA.into(),
            prompt_ids: prompt_ids.to_vec(),
            top_k,
            positions,
            greedy: source.generate(prompt_ids, max_new).map_err(reference)?,
        })
    }

    /// Canonical bytes (pretty JSON, trailing newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses a golden read from a bundle.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() as u64 > MAX_GOLDEN_BYTES {
            return Err(Error::Golden("reference.json is larger than 64 MiB".into()));
        }
        let g: Golden = serde_json::from_slice(bytes)
            .map_err(|e| Error::Golden(format!("reference.json: {e}")))?;
        if g.schema != GOLDEN_SCHEMA || g.positions.len() != g.prompt_ids.len() {
            return Err(Error::Golden(
                "reference.json: wrong schema or one position per prompt id missing".into(),
            ));
        }
        Ok(g)
    }

    /// Runs `model` on the golden's prompt and measures it against the golden.
    pub fn measure(&self, model: &Model, thresholds: &Thresholds) -> Result<Metrics> {
        let logits = model.logits(&self.prompt_ids).map_err(reference)?;
        let mut kls = Vec::with_capacity(self.positions.len());
        let (mut same_top1, mut decisive, mut same_decisive) = (0usize, 0u32, 0u32);
        for (i, pos) in self.positions.iter().enumerate() {
            let row = logits
                .row(i)
                .ok_or_else(|| Error::Golden(format!("model gave no logits at position {i}")))?;
            kls.push(metrics::kl_from_topk(&pos.top, Some(pos.log_norm), row));
            let same = pos.top.first().map(|t| t.0) == Some(metrics::argmax(row));
            same_top1 += usize::from(same);
            if pos.margin() >= thresholds.decisive_margin {
                decisive += 1;
                same_decisive += u32::from(same);
            }
        }
        let n = kls.len().max(1) as f64;
        let greedy = model
            .generate(&self.prompt_ids, self.greedy.len())
            .map_err(reference)?;
        let agree = greedy
            .iter()
            .zip(&self.greedy)
            .take_while(|(a, b)| a == b)
            .count();
        let top1_decisive = if decisive == 0 {
            1.0
        } else {
            f64::from(same_decisive) / f64::from(decisive)
        };
        let mean_kl = kls.iter().sum::<f64>() / n;
        let max_kl = kls.iter().copied().fold(0.0, f64::max);
        Ok(Metrics {
            top1: same_top1 as f64 / n,
            top1_decisive,
            decisive_positions: decisive,
            mean_kl,
            max_kl,
            greedy_agreement: agree as f64 / self.greedy.len().max(1) as f64,
            greedy,
            passed: top1_decisive >= thresholds.min_top1
                && mean_kl <= thresholds.max_mean_kl
                && max_kl <= thresholds.max_kl,
        })
    }
}

fn reference(e: wharf_reference::Error) -> Error {
    Error::Reference(e.to_string())
}
