//! Plans for FP8 HF folders: DeepSeek's native block layout and compressed-tensors
//! `float-quantized` (block, channel, tensor), with the exact `quantization_config` each
//! runtime reads.
//!
//! Layouts: DeepSeek-V3 `README_WEIGHTS.md` / `inference/kernel.py` (`weight_scale_inv` = amax/448
//! per 128x128 block, f32; the rest BF16, `e_score_correction_bias` F32); compressed-tensors
//! 0.20.0 `quantization/quant_scheme.py` presets `FP8_BLOCK` / `FP8_DYNAMIC` and
//! `compressors/model_compressors/model_compressor.py` (config JSON, `weight_scale` in the model
//! dtype, `lm_head` ignored). Which tensors are quantized follows the reference checkpoints in
//! `tests/data/fixtures/models`: Linear weights (`*_proj.weight`, matrices); the DeepSeek layout
//! additionally leaves Linears whose dimensions are not whole 128-blocks in BF16 (the reference
//! keeps `kv_a_proj_with_mqa` [192, 256] that way).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::{Value, json};
use wharf_core::cast::encode_f32;
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::Elements;
use wharf_quantizers::fp8::{self, Fp8Format, Fp8Options, block_grid};

use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::{Encoder, Planned, refusal};

/// The FP8 layouts wharf writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fp8Scheme {
    /// DeepSeek native: E4M3 128x128 blocks, `weight_scale_inv` f32, rest BF16.
    DeepseekBlock,
    /// compressed-tensors `FP8_BLOCK`: 128x128 blocks, `weight_scale` in the model dtype.
    CtBlock,
    /// compressed-tensors `FP8_DYNAMIC`: one scale per output channel.
    CtChannel,
    /// compressed-tensors per-tensor weights, dynamic per-token activations.
    CtTensor,
}

/// How one quantized weight is encoded.
#[derive(Debug, Clone, Copy)]
struct Job {
    opts: Fp8Options,
    rows: usize,
    cols: usize,
    scheme: Fp8Scheme,
}

impl Job {
    /// Number of scales.
    fn scale_count(&self) -> usize {
        match self.scheme {
            Fp8Scheme::DeepseekBlock | Fp8Scheme::CtBlock => {
                let (gr, gc) = block_grid(self.rows, self.cols, (128, 128));
                gr * gc
            }
            Fp8Scheme::CtChannel => self.rows,
            Fp8Scheme::CtTensor => 1,
        }
    }

    /// Writes a weight's codes into `codes` and returns its scales.
    fn run(&self, v: &Elements<'_>, codes: &mut [u8]) -> std::result::Result<Vec<f32>, String> {
        let (o, rows, cols) = (self.opts, self.rows, self.cols);
        let mut scales = vec![0f32; self.scale_count()];
        let r = match self.scheme {
            Fp8Scheme::DeepseekBlock | Fp8Scheme::CtBlock => {
                fp8::quantize_blocks_into(o, *v, rows, cols, (128, 128), codes, &mut scales)
            }
            Fp8Scheme::CtChannel => {
                fp8::quantize_per_channel_into(o, *v, rows, cols, codes, &mut scales)
            }
            Fp8Scheme::CtTensor => {
                fp8::quantize_per_tensor_into(o, *v, codes).map(|s| scales[0] = s)
            }
        };
        r.map_err(|e| refusal(e, v))?;
        Ok(scales)
    }
}

/// What an output tensor of a quantized weight holds.
#[derive(Debug, Clone)]
enum Part {
    /// The FP8 codes.
    Codes(Job),
    /// The scales of the weight named here.
    Scales(String, Job),
}

/// Output tensors plus the encoder state for their FP8 codes.
pub struct Fp8Plan {
    /// Output tensors in order (weights, then their scale right after).
    pub tensors: Vec<Planned>,
    /// config.json for the output.
    pub config: Value,
    parts: BTreeMap<String, Part>,
    /// Scales computed with each weight's codes, taken by the scale tensor planned right after
    /// it, so a weight is quantized once.
    scales: Mutex<HashMap<String, Vec<f32>>>,
}

impl std::fmt::Debug for Fp8Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fp8Plan")
            .field("tensors", &self.tensors)
            .finish()
    }
}

impl Encoder for Fp8Plan {
    fn claims(&self, meta: &TensorMeta) -> bool {
        self.parts.contains_key(&meta.name)
    }

    /// Writes the FP8 codes of a planned weight, or its scales in their storage dtype.
    fn encode(
        &self,
        meta: &TensorMeta,
        v: &Elements<'_>,
        out: &mut [u8],
    ) -> std::result::Result<(), String> {
        match self.parts.get(&meta.name) {
            Some(Part::Codes(job)) => {
                let scales = job.run(v, out)?;
                if let Ok(mut cache) = self.scales.lock() {
                    cache.insert(meta.name.clone(), scales);
                }
                Ok(())
            }
            Some(Part::Scales(weight, job)) => {
                let cached = self.scales.lock().ok().and_then(|mut c| c.remove(weight));
                let scales = match cached {
                    Some(s) => s,
                    None => job.run(v, &mut vec![0u8; v.len()])?,
                };
                encode_f32(meta.dtype, &scales, out).map_err(|e| e.to_string())
            }
            None => Err(format!("no FP8 job for `{}`", meta.name)),
        }
    }
}

/// Whether `m` is a Linear weight this scheme quantizes.
fn quantizes(scheme: Fp8Scheme, m: &TensorMeta) -> bool {
    let d = m.shape.dims();
    let linear = d.len() == 2 && m.name.ends_with("_proj.weight") && m.dtype.is_float();
    match scheme {
        Fp8Scheme::DeepseekBlock => linear && d[0].is_multiple_of(128) && d[1].is_multiple_of(128),
        _ => linear,
    }
}

/// Storage of a tensor left unquantized.
fn dense_dtype(scheme: Fp8Scheme, m: &TensorMeta) -> DType {
    match scheme {
        _ if !m.dtype.is_float() => m.dtype,
        Fp8Scheme::DeepseekBlock if m.name.ends_with("e_score_correction_bias") => DType::F32,
        Fp8Scheme::DeepseekBlock => DType::BF16,
        _ => m.dtype,
    }
}

/// Plans every tensor of `src` (a logical view: quantized inputs already dequantized).
pub fn plan_fp8(src: &dyn TensorSource, config: &Value, scheme: Fp8Scheme) -> Result<Fp8Plan> {
    let mut tensors = Vec::new();
    let mut parts = BTreeMap::new();
    for m in src.tensors() {
        if !quantizes(scheme, m) {
            let out = TensorMeta::new(m.name.clone(), dense_dtype(scheme, m), m.shape.clone());
            tensors.push(Planned::simple(out, m.name.clone()));
            continue;
        }
        let (rows, cols) = (m.shape.dims()[0] as usize, m.shape.dims()[1] as usize);
        let (opts, scale_name, scale_dtype) = match scheme {
            Fp8Scheme::DeepseekBlock => (
                Fp8Options::DEEPSEEK,
                format!("{}_scale_inv", m.name),
                DType::F32,
            ),
            _ => (
                Fp8Options::compressed_tensors(Fp8Format::E4M3, m.dtype),
                format!("{}_scale", m.name),
                m.dtype,
            ),
        };
        let job = Job {
            opts,
            rows,
            cols,
            scheme,
        };
        let scale_shape: Vec<u64> = match scheme {
            Fp8Scheme::DeepseekBlock | Fp8Scheme::CtBlock => {
                let (gr, gc) = block_grid(rows, cols, (128, 128));
                vec![gr as u64, gc as u64]
            }
            Fp8Scheme::CtChannel => vec![rows as u64, 1],
            Fp8Scheme::CtTensor => vec![1],
        };
        parts.insert(m.name.clone(), Part::Codes(job));
        parts.insert(scale_name.clone(), Part::Scales(m.name.clone(), job));
        tensors.push(Planned::simple(
            TensorMeta::new(m.name.clone(), DType::F8E4M3, m.shape.clone()),
            m.name.clone(),
        ));
        tensors.push(Planned::simple(
            TensorMeta::new(scale_name, scale_dtype, scale_shape),
            m.name.clone(),
        ));
    }
    if parts.is_empty() {
        return Err(Error::new(ErrorKind::Unconvertible(
            "no Linear weight to quantize to FP8".into(),
        )));
    }
    let config = output_config(config, scheme);
    Ok(Fp8Plan {
        tensors,
        config,
        parts,
        scales: Mutex::default(),
    })
}

/// The source config with its quantization blocks replaced.
fn output_config(config: &Value, scheme: Fp8Scheme) -> Value {
    let mut c = config.clone();
    if let Some(o) = c.as_object_mut() {
        o.shift_remove("quantization");
        o.shift_remove("quantization_config");
        if scheme == Fp8Scheme::DeepseekBlock {
            for k in ["dtype", "torch_dtype"] {
                if o.contains_key(k) {
                    o.insert(k.into(), json!("bfloat16"));
                }
            }
        }
        o.insert("quantization_config".into(), quantization_config(scheme));
    }
    c
}

/// The exact `quantization_config` of each scheme (DeepSeek-V3 config.json; compressed-tensors
/// 0.20.0 output, keys sorted as it writes them).
pub fn quantization_config(scheme: Fp8Scheme) -> Value {
    let (weights, inputs) = match scheme {
        Fp8Scheme::DeepseekBlock => {
            return json!({"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                "weight_block_size": [128, 128]});
        }
        Fp8Scheme::CtBlock => (
            json!({"block_structure": [128, 128], "dynamic": false, "group_size": null,
                "num_bits": 8, "strategy": "block", "symmetric": true, "type": "float"}),
            json!({"dynamic": true, "group_size": 128, "num_bits": 8, "strategy": "group",
                "symmetric": true, "type": "float"}),
        ),
        Fp8Scheme::CtChannel | Fp8Scheme::CtTensor => (
            json!({"dynamic": false, "group_size": null, "num_bits": 8,
                "strategy": if scheme == Fp8Scheme::CtChannel { "channel" } else { "tensor" },
                "symmetric": true, "type": "float"}),
            json!({"dynamic": true, "group_size": null, "num_bits": 8, "strategy": "token",
                "symmetric": true, "type": "float"}),
        ),
    };
    json!({
        "config_groups": {"group_0": {"format": "float-quantized", "input_activations": inputs,
            "output_activations": null, "targets": ["Linear"], "weights": weights}},
        "format": "float-quantized",
        "global_compression_ratio": null,
        "ignore": ["lm_head"],
        "kv_cache_scheme": null,
        "moe_sparsity_config": null,
        "quant_method": "compressed-tensors",
        "quantization_status": "compressed",
        "sparsity_config": {},
        "transform_config": {},
        "version": "0.20.0"
    })
}
