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
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::fp8::{self, Fp8Format, Fp8Options, block_grid};

use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::Planned;

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
    /// `(codes, scales)` of a weight's f32 values.
    fn run(&self, v: &[f32]) -> std::result::Result<(Vec<u8>, Vec<f32>), String> {
        let r = match self.scheme {
            Fp8Scheme::DeepseekBlock | Fp8Scheme::CtBlock => {
                fp8::quantize_blocks(self.opts, v, self.rows, self.cols, (128, 128))
            }
            Fp8Scheme::CtChannel => fp8::quantize_per_channel(self.opts, v, self.rows, self.cols),
            Fp8Scheme::CtTensor => {
                fp8::quantize_per_tensor(self.opts, v).map(|(q, s)| (q, vec![s]))
            }
        };
        r.map_err(|e| e.to_string())
    }
}

/// Output tensors plus the encoder state for their FP8 codes.
pub struct Fp8Plan {
    /// Output tensors in order (weights, then their scale right after).
    pub tensors: Vec<Planned>,
    /// config.json for the output.
    pub config: Value,
    jobs: BTreeMap<String, Job>,
    /// Scales computed with each weight's codes, taken by the scale tensor planned right after
    /// it, so a weight is quantized once.
    scales: ScaleCache,
}

type ScaleCache = Arc<Mutex<HashMap<String, Vec<f32>>>>;

impl std::fmt::Debug for Fp8Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fp8Plan")
            .field("tensors", &self.tensors)
            .finish()
    }
}

impl Fp8Plan {
    /// The pipeline encoder hook: writes the FP8 codes of a planned weight.
    pub fn encode(
        &self,
        meta: &TensorMeta,
        v: &[f32],
        out: &mut [u8],
    ) -> std::result::Result<(), String> {
        let job = self
            .jobs
            .get(&meta.name)
            .ok_or_else(|| format!("no FP8 job for `{}`", meta.name))?;
        let (codes, scales) = job.run(v)?;
        if let Ok(mut cache) = self.scales.lock() {
            cache.insert(meta.name.clone(), scales);
        }
        if codes.len() != out.len() {
            return Err(format!("{} codes for {} bytes", codes.len(), out.len()));
        }
        out.copy_from_slice(&codes);
        Ok(())
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
    let mut jobs = BTreeMap::new();
    let scales = ScaleCache::default();
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
        jobs.insert(m.name.clone(), job);
        tensors.push(Planned::simple(
            TensorMeta::new(m.name.clone(), DType::F8E4M3, m.shape.clone()),
            m.name.clone(),
        ));
        let (cache, weight) = (Arc::clone(&scales), m.name.clone());
        tensors.push(Planned {
            meta: TensorMeta::new(scale_name, scale_dtype, scale_shape),
            from: vec![m.name.clone()],
            transform: Some(Box::new(move |v: &[f32]| {
                let cached = cache.lock().ok().and_then(|mut c| c.remove(&weight));
                cached.unwrap_or_else(|| job.run(v).map(|(_, s)| s).unwrap_or_default())
            })),
        });
    }
    if jobs.is_empty() {
        return Err(Error::new(ErrorKind::Unconvertible(
            "no Linear weight to quantize to FP8".into(),
        )));
    }
    let config = output_config(config, scheme);
    Ok(Fp8Plan {
        tensors,
        config,
        jobs,
        scales,
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
