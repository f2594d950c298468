//! Plan for compressed-tensors `pack-quantized` INT4 HF folders (W4A16: 4-bit integer weights,
//! one scale per group of 128 input channels, activations left in the model dtype; symmetric, or
//! asymmetric with a zero point per group as the `W4A16_ASYM` preset), as vLLM's
//! compressed-tensors loader reads them.
//!
//! Layout (compressed-tensors 0.20.0 `compressors/quantized_compressors/pack_quantized.py`,
//! FORMATS.md b7): per quantized Linear `X.weight_packed` (I32 `[out, in/8]`, codes offset by 8,
//! LSB first along the row), `X.weight_scale` (`[out, in/128]` in the model dtype) and
//! `X.weight_shape` (I64 `[2]`: `torch.tensor(weight.shape)`); asymmetric adds `X.weight_zero_point`
//! (I32 `[ceil(out/8), in/128]`, codes offset by 8, packed LSB first down the columns). Which
//! tensors are quantized follows the FP8 plan (`is_block_linear`: the Linears of attention and
//! MLP); a Linear whose row is not whole groups cannot be packed and is left dense and named in
//! `ignore` beside `lm_head`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Mutex;

use serde_json::{Value, json};
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::Elements;
use wharf_quantizers::int4::{CtPacked, CtParams, quantize_pack};

use super::fp8_plan::is_block_linear;
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::{Encoder, Planned, Slicing, append_encoded, f32_values, refusal};

/// How one quantized weight is encoded.
#[derive(Debug, Clone, Copy)]
struct Job {
    rows: usize,
    cols: usize,
    params: CtParams,
}

/// Rows quantized together: zero points are packed 32/bits rows to a word down the columns.
fn row_block(job: &Job) -> usize {
    (32 / job.params.bits.max(1)) as usize
}

/// What an output tensor of a quantized weight holds.
#[derive(Debug, Clone, Copy)]
enum Part {
    Packed(Job),
    Scale(Job),
    ZeroPoint(Job),
    Shape(Job),
}

/// The scales and zero points a weight's packed codes have produced so far, row block after
/// row block, until its scale (and zero point) tensors take them, so a weight is quantized once.
#[derive(Debug, Default)]
struct Kept {
    rows: usize,
    scale: Option<Vec<f32>>,
    zero_point: Option<Vec<i32>>,
}

/// Output tensors plus the encoder state for their packed codes.
pub struct Int4Plan {
    /// Output tensors in order (per weight: packed, scale, zero point, shape).
    pub tensors: Vec<Planned>,
    /// config.json for the output.
    pub config: Value,
    parts: BTreeMap<String, Part>,
    /// Keyed by the weight's base name (`X` of `X.weight_packed`).
    kept: Mutex<HashMap<String, Kept>>,
}

impl std::fmt::Debug for Int4Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Int4Plan")
            .field("tensors", &self.tensors)
            .finish()
    }
}

impl Int4Plan {
    /// Keeps what rows `start..` of `base` produced (row blocks arrive in order; row 0 starts over).
    fn keep(&self, base: &str, start: usize, q: CtPacked) {
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        let k = kept.entry(base.to_owned()).or_default();
        if start == 0 {
            *k = Kept {
                rows: 0,
                scale: Some(Vec::new()),
                zero_point: q.weight_zero_point.as_ref().map(|_| Vec::new()),
            };
        }
        if k.rows != start {
            return;
        }
        k.rows += q.weight_shape[0];
        if let Some(s) = &mut k.scale {
            s.extend(q.weight_scale);
        }
        if let (Some(z), Some(more)) = (&mut k.zero_point, q.weight_zero_point) {
            z.extend(more);
        }
    }

    /// Whether `base`'s part is kept whole.
    fn complete(&self, base: &str, job: &Job, part: Part) -> bool {
        let Ok(kept) = self.kept.lock() else {
            return false;
        };
        kept.get(base).is_some_and(|k| {
            k.rows == job.rows
                && match part {
                    Part::Scale(_) => k.scale.is_some(),
                    _ => k.zero_point.is_some(),
                }
        })
    }

    /// Takes one of `base`'s kept parts, forgetting the weight once both are taken.
    fn take<T: Default>(&self, base: &str, part: fn(&mut Kept) -> Option<T>) -> T {
        let Ok(mut kept) = self.kept.lock() else {
            return T::default();
        };
        let Some(k) = kept.get_mut(base) else {
            return T::default();
        };
        let got = part(k).unwrap_or_default();
        if k.scale.is_none() && k.zero_point.is_none() {
            kept.remove(base);
        }
        got
    }
}

impl Encoder for Int4Plan {
    fn claims(&self, meta: &TensorMeta) -> bool {
        self.parts.contains_key(&meta.name)
    }

    fn slicing(&self, meta: &TensorMeta) -> Slicing {
        let base = base_name(&meta.name);
        match self.parts.get(&meta.name) {
            Some(Part::Shape(_)) => Slicing::Kept,
            Some(&p @ (Part::Scale(j) | Part::ZeroPoint(j))) if self.complete(base, &j, p) => {
                Slicing::Kept
            }
            Some(Part::Packed(j) | Part::Scale(j) | Part::ZeroPoint(j)) => {
                Slicing::Rows(row_block(j))
            }
            None => Slicing::Whole,
        }
    }

    /// Writes `weight_packed` of some rows (keeping their scales and zero points),
    /// `weight_scale` and `weight_zero_point` (kept, or quantized again) and `weight_shape`.
    fn encode(
        &self,
        meta: &TensorMeta,
        rows: Range<usize>,
        values: Option<&Elements<'_>>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        let part = self.parts.get(&meta.name);
        let part = *part.ok_or_else(|| format!("no INT4 job for `{}`", meta.name))?;
        let base = base_name(&meta.name);
        let quantized = |j: &Job, v: &Elements<'_>| {
            quantize_pack(&f32_values(v), rows.len(), j.cols, j.params).map_err(|e| refusal(e, v))
        };
        match (part, values) {
            (Part::Shape(j), _) => {
                out.extend(
                    [j.rows as i64, j.cols as i64]
                        .iter()
                        .flat_map(|x| x.to_le_bytes()),
                );
            }
            (Part::Packed(j), Some(v)) => {
                let mut q = quantized(&j, v)?;
                let packed = std::mem::take(&mut q.weight_packed);
                out.extend(packed.iter().flat_map(|x| x.to_le_bytes()));
                self.keep(base, rows.start, q);
            }
            (Part::Scale(_), None) => {
                append_encoded(meta.dtype, &self.take(base, |k| k.scale.take()), out)?
            }
            (Part::ZeroPoint(_), None) => {
                let z = self.take(base, |k| k.zero_point.take());
                out.extend(z.iter().flat_map(|x| x.to_le_bytes()));
            }
            (Part::Scale(j), Some(v)) => {
                append_encoded(meta.dtype, &quantized(&j, v)?.weight_scale, out)?
            }
            (Part::ZeroPoint(j), Some(v)) => {
                let z = quantized(&j, v)?.weight_zero_point.unwrap_or_default();
                out.extend(z.iter().flat_map(|x| x.to_le_bytes()));
            }
            (Part::Packed(_), None) => return Err("INT4 codes need their values".into()),
        }
        Ok(())
    }
}

/// `X` of `X.weight_packed`, `X.weight_scale`, `X.weight_zero_point`.
fn base_name(name: &str) -> &str {
    name.rsplit_once(".weight_").map_or(name, |(base, _)| base)
}

/// Plans every tensor of `src` (a logical view: quantized inputs already dequantized).
///
/// `symmetric: false` writes the asymmetric variant (a zero point per group).
pub fn plan_int4(src: &dyn TensorSource, config: &Value, symmetric: bool) -> Result<Int4Plan> {
    let mut tensors = Vec::new();
    let mut parts = BTreeMap::new();
    let mut ignore = vec!["lm_head".to_owned()];
    for m in src.tensors() {
        let (rows, cols) = match m.shape.dims() {
            [r, c] => (*r as usize, *c as usize),
            _ => (0, 0),
        };
        let params = CtParams {
            symmetric,
            ..CtParams::w4a16(m.dtype)
        };
        if !is_block_linear(m) || !cols.is_multiple_of(params.group) {
            if is_block_linear(m) {
                ignore.push(m.name.trim_end_matches(".weight").to_owned());
            }
            let out = TensorMeta::new(m.name.clone(), m.dtype, m.shape.clone());
            tensors.push(Planned::simple(out, m.name.clone()));
            continue;
        }
        let job = Job { rows, cols, params };
        let base = m.name.trim_end_matches(".weight");
        let packed = format!("{base}.weight_packed");
        let shape = format!("{base}.weight_shape");
        let per_word = (32 / params.bits) as u64;
        parts.insert(packed.clone(), Part::Packed(job));
        parts.insert(shape.clone(), Part::Shape(job));
        let dims = [rows as u64, (cols as u64).div_ceil(per_word)];
        tensors.push(Planned::simple(
            TensorMeta::new(packed, DType::I32, dims),
            m.name.clone(),
        ));
        let groups = (cols / params.group) as u64;
        let scale = format!("{base}.weight_scale");
        parts.insert(scale.clone(), Part::Scale(job));
        tensors.push(Planned::simple(
            TensorMeta::new(scale, m.dtype, [rows as u64, groups]),
            m.name.clone(),
        ));
        if !symmetric {
            let zp = format!("{base}.weight_zero_point");
            parts.insert(zp.clone(), Part::ZeroPoint(job));
            let dims = [(rows as u64).div_ceil(per_word), groups];
            tensors.push(Planned::simple(
                TensorMeta::new(zp, DType::I32, dims),
                m.name.clone(),
            ));
        }
        tensors.push(Planned {
            meta: TensorMeta::new(shape, DType::I64, [2u64]),
            from: Vec::new(),
            transform: None,
        });
    }
    if parts.is_empty() {
        return Err(Error::new(ErrorKind::Unconvertible(
            "no Linear weight with whole groups of 128 to quantize to INT4".into(),
        )));
    }
    let mut c = config.clone();
    if let Some(o) = c.as_object_mut() {
        o.shift_remove("quantization");
        o.shift_remove("quantization_config");
        o.insert(
            "quantization_config".into(),
            quantization_config(&ignore, symmetric),
        );
    }
    Ok(Int4Plan {
        tensors,
        config: c,
        parts,
        kept: Mutex::default(),
    })
}

/// compressed-tensors 0.20.0's `quantization_config` for the W4A16 (or W4A16_ASYM) preset (keys
/// sorted as it writes them, the argument fields as in the FP8 reference checkpoints).
pub fn quantization_config(ignore: &[String], symmetric: bool) -> Value {
    json!({
        "config_groups": {"group_0": {"format": "pack-quantized", "input_activations": null,
            "output_activations": null, "targets": ["Linear"],
            "weights": {"dynamic": false, "group_size": 128, "num_bits": 4, "strategy": "group",
                "symmetric": symmetric, "type": "int"}}},
        "format": "pack-quantized",
        "global_compression_ratio": null,
        "ignore": ignore,
        "kv_cache_scheme": null,
        "moe_sparsity_config": null,
        "quant_method": "compressed-tensors",
        "quantization_status": "compressed",
        "sparsity_config": {},
        "transform_config": {},
        "version": "0.20.0"
    })
}
