//! Plan for compressed-tensors `pack-quantized` INT4 HF folders (W4A16: 4-bit symmetric integer
//! weights, one scale per group of 128 input channels, activations left in the model dtype), as
//! vLLM's compressed-tensors loader reads them.
//!
//! Layout (compressed-tensors 0.20.0 `compressors/quantized_compressors/pack_quantized.py`,
//! FORMATS.md b7): per quantized Linear `X.weight_packed` (I32 `[out, in/8]`, codes offset by 8,
//! LSB first along the row), `X.weight_scale` (`[out, in/128]` in the model dtype) and
//! `X.weight_shape` (I64 `[2]`: `torch.tensor(weight.shape)`). Which tensors are quantized follows
//! the FP8 plan: Linear weights (`*_proj.weight`, matrices); a Linear whose row is not whole
//! groups cannot be packed and is left dense and named in `ignore` beside `lm_head`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::Elements;
use wharf_quantizers::int4::{CtParams, quantize_pack};

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
    Shape(Job),
}

/// Output tensors plus the encoder state for their packed codes.
pub struct Int4Plan {
    /// Output tensors in order (per weight: packed, scale, shape).
    pub tensors: Vec<Planned>,
    /// config.json for the output.
    pub config: Value,
    parts: BTreeMap<String, Part>,
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
            Some(Part::Packed(j)) => quantize_pack(&f32_values(values), j.rows, j.cols, j.params)
                .map_err(|e| refusal(e, values))?
                .weight_packed
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

fn is_linear(m: &TensorMeta) -> bool {
    m.shape.dims().len() == 2 && m.name.ends_with("_proj.weight") && m.dtype.is_float()
}

/// Plans every tensor of `src` (a logical view: quantized inputs already dequantized).
pub fn plan_int4(src: &dyn TensorSource, config: &Value) -> Result<Int4Plan> {
    let mut tensors = Vec::new();
    let mut parts = BTreeMap::new();
    let mut ignore = vec!["lm_head".to_owned()];
    for m in src.tensors() {
        let (rows, cols) = match m.shape.dims() {
            [r, c] => (*r as usize, *c as usize),
            _ => (0, 0),
        };
        let params = CtParams::w4a16(m.dtype);
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
        tensors.push(Planned {
            meta: TensorMeta::new(
                format!("{base}.weight_scale"),
                m.dtype,
                [rows as u64, groups],
            ),
            from: vec![m.name.clone()],
            transform: Some(Box::new(move |v: &[f32]| {
                quantize_pack(v, rows, cols, params)
                    .map(|q| q.weight_scale)
                    .unwrap_or_default()
            })),
        });
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
        o.insert("quantization_config".into(), quantization_config(&ignore));
    }
    Ok(Int4Plan {
        tensors,
        config: c,
        parts,
    })
}

/// compressed-tensors 0.20.0's `quantization_config` for the W4A16 preset (keys sorted as it
/// writes them, the argument fields as in the FP8 reference checkpoints).
pub fn quantization_config(ignore: &[String]) -> Value {
    json!({
        "config_groups": {"group_0": {"format": "pack-quantized", "input_activations": null,
            "output_activations": null, "targets": ["Linear"],
            "weights": {"dynamic": false, "group_size": 128, "num_bits": 4, "strategy": "group",
                "symmetric": true, "type": "int"}}},
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
