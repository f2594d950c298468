//! Plans for FP8 HF folders: DeepSeek's native block layout and compressed-tensors
//! `float-quantized` (block, channel, tensor), with the exact `quantization_config` each
//! runtime reads.
//!
//! Layouts: DeepSeek-V3 `README_WEIGHTS.md` / `inference/kernel.py` (`weight_scale_inv` = amax/448
//! per 128x128 block, f32; the rest BF16, `e_score_correction_bias` F32); compressed-tensors
//! 0.20.0 `quantization/quant_scheme.py` presets `FP8_BLOCK` / `FP8_DYNAMIC` and
//! `compressors/model_compressors/model_compressor.py` (config JSON, `weight_scale` in the model
//! dtype, `lm_head` ignored). Which tensors are quantized follows the reference checkpoints:
//! Linear weights (`*_proj.weight`, matrices), whatever their dimensions. A weight that is not
//! whole 128x128 blocks gets partial edge blocks, each scaled by the amax of its real elements,
//! as the released V3/R1 checkpoints do (`kv_a_proj_with_mqa` 576 x 7168 has scales [5, 56];
//! DeepSeek-V3 `README_WEIGHTS.md`: blocks are zero-padded before the scale is computed). The
//! DeepSeek layout leaves the MTP module's `eh_proj` in BF16 (a plain Linear in vLLM's and
//! SGLang's MTP models, stored unquantized in the release).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Mutex;

use serde_json::{Value, json};
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::Elements;
use wharf_quantizers::fp8::{self, Fp8Format, Fp8Options, block_grid};

use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::{Encoder, Planned, Slicing, append_encoded, refusal};

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
    /// Scales per row block of [`Job::slicing`]'s rows: a grid row of blocks, one channel, or
    /// the tensor's one scale.
    fn scales_for(&self, rows: usize) -> usize {
        match self.scheme {
            Fp8Scheme::DeepseekBlock | Fp8Scheme::CtBlock => {
                let (gr, gc) = block_grid(rows, self.cols, (128, 128));
                gr * gc
            }
            Fp8Scheme::CtChannel => rows,
            Fp8Scheme::CtTensor => 1,
        }
    }

    /// Rows quantized together: a strip of 128-row blocks, a channel, or the whole tensor
    /// (its one scale needs every value first).
    fn slicing(&self) -> Slicing {
        match self.scheme {
            Fp8Scheme::DeepseekBlock | Fp8Scheme::CtBlock => Slicing::Rows(128),
            Fp8Scheme::CtChannel => Slicing::Rows(1),
            Fp8Scheme::CtTensor => Slicing::Whole,
        }
    }

    /// Writes the codes of `rows` rows (`v`) into `codes` and returns their scales.
    fn run(
        &self,
        v: &Elements<'_>,
        rows: usize,
        codes: &mut [u8],
    ) -> std::result::Result<Vec<f32>, String> {
        let (o, cols) = (self.opts, self.cols);
        let mut scales = vec![0f32; self.scales_for(rows)];
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

/// The scales a weight's codes have produced so far, row block after row block.
#[derive(Debug, Default)]
struct Kept {
    /// Rows quantized.
    rows: usize,
    scales: Vec<f32>,
}

/// Output tensors plus the encoder state for their FP8 codes.
pub struct Fp8Plan {
    /// Output tensors in order (weights, then their scale right after).
    pub tensors: Vec<Planned>,
    /// config.json for the output.
    pub config: Value,
    parts: BTreeMap<String, Part>,
    /// Scales computed with each weight's codes, taken whole by the scale tensor planned after
    /// it, so a weight is quantized once (a scale tensor made without them quantizes again).
    scales: Mutex<HashMap<String, Kept>>,
}

impl std::fmt::Debug for Fp8Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fp8Plan")
            .field("tensors", &self.tensors)
            .finish()
    }
}

impl Fp8Plan {
    /// Keeps the scales of `weight`'s rows starting at `start` (row blocks arrive in order; a
    /// block at row 0 starts over).
    fn keep(&self, weight: &str, start: usize, rows: usize, scales: Vec<f32>) {
        if let Ok(mut kept) = self.scales.lock() {
            let k = kept.entry(weight.to_owned()).or_default();
            if start == 0 {
                *k = Kept::default();
            }
            if k.rows == start {
                k.rows += rows;
                k.scales.extend(scales);
            }
        }
    }

    /// Every scale of `weight`, once all its rows were quantized.
    fn complete(&self, weight: &str, job: &Job) -> bool {
        let kept = self.scales.lock();
        kept.is_ok_and(|k| k.get(weight).is_some_and(|k| k.rows == job.rows))
    }
}

impl Encoder for Fp8Plan {
    fn claims(&self, meta: &TensorMeta) -> bool {
        self.parts.contains_key(&meta.name)
    }

    fn slicing(&self, meta: &TensorMeta) -> Slicing {
        match self.parts.get(&meta.name) {
            Some(Part::Scales(weight, job)) if self.complete(weight, job) => Slicing::Kept,
            Some(Part::Codes(job) | Part::Scales(_, job)) => job.slicing(),
            None => Slicing::Whole,
        }
    }

    /// Writes the FP8 codes of a planned weight's rows, or its scales in their storage dtype.
    fn encode(
        &self,
        meta: &TensorMeta,
        rows: Range<usize>,
        v: Option<&Elements<'_>>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        let part = self.parts.get(&meta.name);
        let part = part.ok_or_else(|| format!("no FP8 job for `{}`", meta.name))?;
        let scales = match (part, v) {
            (Part::Codes(job), Some(v)) => {
                out.resize(v.len(), 0);
                let scales = job.run(v, rows.len(), out)?;
                self.keep(&meta.name, rows.start, rows.len(), scales);
                return Ok(());
            }
            (Part::Scales(weight, _), None) => {
                let kept = self.scales.lock().ok().and_then(|mut c| c.remove(weight));
                kept.map(|k| k.scales).unwrap_or_default()
            }
            (Part::Scales(_, job), Some(v)) => job.run(v, rows.len(), &mut vec![0u8; v.len()])?,
            (Part::Codes(_), None) => return Err("FP8 codes need their values".into()),
        };
        append_encoded(meta.dtype, &scales, out)
    }
}

/// Whether `m` is the weight of a Linear inside a decoder block's attention or MLP (routed and
/// shared experts included): a float matrix named `*_proj.weight` (`q_proj`, `down_proj`,
/// DeepSeek's `kv_a_proj_with_mqa` ...), the MoE router `mlp.gate` excepted.
pub(crate) fn is_block_linear(m: &TensorMeta) -> bool {
    let n = &m.name;
    m.shape.rank() == 2
        && m.dtype.is_float()
        && (n.ends_with("_proj.weight") || n.ends_with("_proj_with_mqa.weight"))
}

/// Whether `m` is a Linear weight this scheme quantizes.
fn quantizes(scheme: Fp8Scheme, m: &TensorMeta) -> bool {
    let linear = is_block_linear(m);
    match scheme {
        Fp8Scheme::DeepseekBlock => linear && !m.name.ends_with(".eh_proj.weight"),
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
