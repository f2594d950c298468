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
//! tensors are quantized follows
//! the FP8 plan: Linear weights (`*_proj.weight`, matrices); a Linear whose row is not whole
//! groups cannot be packed and is left dense and named in `ignore` beside `lm_head`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::Elements;
use wharf_quantizers::int4::{CtPacked, CtParams, quantize_pack};

use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::{Encoder, Planned, f32_values, refusal};

/// How one quantized weight is encoded.
#[derive(Debug, Clone, Copy)]
struct Job {
    rows: usize,
    cols: usize,
    params: CtParams,
}

/// What an output tensor of a quantized weight holds.
#[derive(Debug, Clone, Copy)]
enum Part {
    Packed(Job),
    ZeroPoint(Job),
    Shape(Job),
}

/// Each weight's quantization, keyed by its base name (`X` of `X.weight_packed`), kept from
/// encoding the packed codes until its scale (and zero point) tensors have taken their parts, so a
/// weight is quantized once.
type Cache = Arc<Mutex<HashMap<String, CtPacked>>>;

/// Takes one part of `base`'s cached quantization, or quantizes `values` again (a tensor planned
/// before its codes, or a cache that could not be locked); they are widened to f32 only then.
fn take<T: Default>(
    cache: &Cache,
    base: &str,
    values: &Elements<'_>,
    job: Job,
    part: fn(&mut CtPacked) -> T,
) -> T {
    let hit = cache.lock().ok().and_then(|mut c| {
        let q = c.get_mut(base)?;
        let got = part(q);
        if q.weight_scale.is_empty() && q.weight_zero_point.is_none() {
            c.remove(base);
        }
        Some(got)
    });
    hit.unwrap_or_else(|| {
        quantize_pack(&f32_values(values), job.rows, job.cols, job.params)
            .map(|mut q| part(&mut q))
            .unwrap_or_default()
    })
}

fn scale_part(q: &mut CtPacked) -> Vec<f32> {
    std::mem::take(&mut q.weight_scale)
}

fn zero_point_part(q: &mut CtPacked) -> Vec<i32> {
    q.weight_zero_point.take().unwrap_or_default()
}

/// Output tensors plus the encoder state for their packed codes.
pub struct Int4Plan {
    /// Output tensors in order (per weight: packed, scale, shape).
    pub tensors: Vec<Planned>,
    /// config.json for the output.
    pub config: Value,
    parts: BTreeMap<String, Part>,
    cache: Cache,
}

impl std::fmt::Debug for Int4Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Int4Plan")
            .field("tensors", &self.tensors)
            .finish()
    }
}

impl Encoder for Int4Plan {
    /// Writes `weight_packed` (from the weight's values) and `weight_shape`.
    fn encode(
        &self,
        meta: &TensorMeta,
        values: &Elements<'_>,
        out: &mut [u8],
    ) -> std::result::Result<(), String> {
        let bytes: Vec<u8> = match self.parts.get(&meta.name) {
            Some(Part::Packed(j)) => {
                let v = f32_values(values);
                let mut q =
                    quantize_pack(&v, j.rows, j.cols, j.params).map_err(|e| refusal(e, values))?;
                let packed = std::mem::take(&mut q.weight_packed);
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(base_name(&meta.name).to_owned(), q);
                }
                packed.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
            Some(Part::ZeroPoint(j)) => take(
                &self.cache,
                base_name(&meta.name),
                values,
                *j,
                zero_point_part,
            )
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
            Some(Part::Shape(j)) => [j.rows as i64, j.cols as i64]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            None => return Err(format!("no INT4 job for `{}`", meta.name)),
        };
        if bytes.len() != out.len() {
            return Err(format!("{} bytes for {} planned", bytes.len(), out.len()));
        }
        out.copy_from_slice(&bytes);
        Ok(())
    }
}

/// `X` of `X.weight_packed`, `X.weight_scale`, `X.weight_zero_point`.
fn base_name(name: &str) -> &str {
    name.rsplit_once(".weight_").map_or(name, |(base, _)| base)
}

fn is_linear(m: &TensorMeta) -> bool {
    m.shape.dims().len() == 2 && m.name.ends_with("_proj.weight") && m.dtype.is_float()
}

/// Plans every tensor of `src` (a logical view: quantized inputs already dequantized).
///
/// `symmetric: false` writes the asymmetric variant (a zero point per group).
pub fn plan_int4(src: &dyn TensorSource, config: &Value, symmetric: bool) -> Result<Int4Plan> {
    let mut tensors = Vec::new();
    let mut parts = BTreeMap::new();
    let cache = Cache::default();
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
        if !is_linear(m) || !cols.is_multiple_of(params.group) {
            if is_linear(m) {
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
        let (c, key) = (Arc::clone(&cache), base.to_owned());
        tensors.push(Planned {
            meta: TensorMeta::new(scale, m.dtype, [rows as u64, groups]),
            from: vec![m.name.clone()],
            transform: Some(Box::new(move |v: &[f32]| {
                take(&c, &key, &Elements::F32(v), job, scale_part)
            })),
        });
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
        cache,
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
