//! The quantization parameters config.json declares: `quantization_config` (DeepSeek FP8,
//! compressed-tensors, GPTQ) or MLX's `quantization` block.
//!
//! Sources: DeepSeek-V3 `config.json` (`weight_block_size`, `fmt`); compressed-tensors
//! `quantization/quant_config.py` (`config_groups.*.weights`); AutoGPTQ `quantize_config.json`
//! keys as transformers' `GPTQConfig` writes them; mlx-lm `utils.py` (`quantization`).

use std::collections::BTreeMap;

use serde_json::Value;
use wharf_quantizers::fp8::Fp8Format;
use wharf_quantizers::int4::GptqFormat;
use wharf_quantizers::mlx::MlxParams;

use crate::error::{Error, ErrorKind, Result};

/// What config.json says about quantized weights.
#[derive(Debug, Clone, Default)]
pub(super) struct QuantConfig {
    /// The config declares some quantization (so stray companions are errors).
    pub declared: bool,
    /// DeepSeek `weight_block_size`, compressed-tensors `block_structure`.
    pub block: Option<(usize, usize)>,
    /// FP8 code format (`fmt`, or compressed-tensors `type` + `num_bits`).
    pub fp8: Option<Fp8Format>,
    /// Integer weights: compressed-tensors or GPTQ `num_bits` / `bits`.
    pub int_bits: Option<u32>,
    /// GPTQ group size (`None` for -1) and zero-point convention.
    pub gptq: Option<(Option<usize>, GptqFormat)>,
    /// MLX default parameters and per-module overrides (`None`: left unquantized).
    pub mlx: Option<(MlxParams, BTreeMap<String, Option<MlxParams>>)>,
}

fn cfg_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Config(msg.into()))
}

impl QuantConfig {
    /// Parses the relevant blocks of config.json (none: defaults, nothing declared).
    pub fn parse(config: Option<&Value>) -> Result<Self> {
        let Some(config) = config else {
            return Ok(Self::default());
        };
        if let Some(q) = config.get("quantization").filter(|q| q.is_object()) {
            return mlx(q);
        }
        let Some(q) = config.get("quantization_config").filter(|q| !q.is_null()) else {
            return Ok(Self::default());
        };
        match q.get("quant_method").and_then(Value::as_str) {
            Some("fp8") => deepseek(q),
            Some("compressed-tensors") => compressed_tensors(q),
            Some("gptq") => gptq(q),
            Some(other) => Err(cfg_err(format!(
                "quantization_config.quant_method `{other}` is not read by wharf"
            ))),
            None => Err(cfg_err("quantization_config has no quant_method")),
        }
    }

    /// The MLX parameters of the module at `path` (`None`: not quantized).
    pub fn mlx_params(&self, path: &str) -> Option<Option<MlxParams>> {
        let (default, layers) = self.mlx.as_ref()?;
        Some(layers.get(path).copied().unwrap_or(Some(*default)))
    }
}

fn usize_of(v: &Value, what: &str) -> Result<usize> {
    v.as_u64()
        .and_then(|x| usize::try_from(x).ok())
        .ok_or_else(|| cfg_err(format!("{what} is not a non-negative integer: {v}")))
}

fn block_of(v: &Value, what: &str) -> Result<Option<(usize, usize)>> {
    match v {
        Value::Null => Ok(None),
        Value::Array(a) if a.len() == 2 => {
            let (r, c) = (usize_of(&a[0], what)?, usize_of(&a[1], what)?);
            if r == 0 || c == 0 {
                return Err(cfg_err(format!("{what} has a zero dimension")));
            }
            Ok(Some((r, c)))
        }
        other => Err(cfg_err(format!("{what} is not [rows, cols]: {other}"))),
    }
}

fn deepseek(q: &Value) -> Result<QuantConfig> {
    let block = block_of(
        q.get("weight_block_size").unwrap_or(&Value::Null),
        "weight_block_size",
    )?;
    let fp8 = match q.get("fmt").and_then(Value::as_str) {
        None | Some("e4m3") => Fp8Format::E4M3,
        Some("e5m2") => Fp8Format::E5M2,
        Some(f) => return Err(cfg_err(format!("FP8 fmt `{f}`"))),
    };
    Ok(QuantConfig {
        declared: true,
        block: Some(block.unwrap_or((128, 128))),
        fp8: Some(fp8),
        ..QuantConfig::default()
    })
}

/// The weights arguments of every config group; they must agree (one scheme per model).
fn compressed_tensors(q: &Value) -> Result<QuantConfig> {
    let groups = q
        .get("config_groups")
        .and_then(Value::as_object)
        .ok_or_else(|| cfg_err("compressed-tensors config without config_groups"))?;
    let mut weights: Option<&Value> = None;
    for (name, g) in groups {
        let w = g.get("weights").filter(|w| !w.is_null());
        match (weights, w) {
            (None, w) => weights = w,
            (Some(a), Some(b)) if a != b => {
                return Err(cfg_err(format!(
                    "config group `{name}` quantizes weights differently from the others; \
                     wharf reads one weight scheme per model"
                )));
            }
            _ => {}
        }
    }
    let Some(w) = weights else {
        return Ok(QuantConfig {
            declared: true,
            ..QuantConfig::default()
        });
    };
    let bits = w
        .get("num_bits")
        .map(|b| usize_of(b, "num_bits"))
        .transpose()?;
    let kind = w.get("type").and_then(Value::as_str).unwrap_or("int");
    let block = block_of(
        w.get("block_structure").unwrap_or(&Value::Null),
        "block_structure",
    )?;
    let mut out = QuantConfig {
        declared: true,
        block,
        ..QuantConfig::default()
    };
    match (kind, bits) {
        ("float", Some(8) | None) => out.fp8 = Some(Fp8Format::E4M3),
        ("int", Some(b @ (4 | 8))) => out.int_bits = Some(b as u32),
        (k, b) => {
            return Err(cfg_err(format!(
                "compressed-tensors weights of type `{k}` with {b:?} bits"
            )));
        }
    }
    Ok(out)
}

fn gptq(q: &Value) -> Result<QuantConfig> {
    let bits = q
        .get("bits")
        .map(|b| usize_of(b, "bits"))
        .transpose()?
        .unwrap_or(4);
    let group = match q.get("group_size").and_then(Value::as_i64) {
        None | Some(-1) => None,
        Some(g) if g > 0 => Some(g as usize),
        Some(g) => return Err(cfg_err(format!("GPTQ group_size {g}"))),
    };
    let format = match q.get("checkpoint_format").and_then(Value::as_str) {
        None | Some("gptq") => GptqFormat::V1,
        Some("gptq_v2") => GptqFormat::V2,
        Some(f) => return Err(cfg_err(format!("GPTQ checkpoint_format `{f}`"))),
    };
    if !matches!(bits, 4 | 8) {
        return Err(cfg_err(format!("GPTQ bits {bits}")));
    }
    Ok(QuantConfig {
        declared: true,
        int_bits: Some(bits as u32),
        gptq: Some((group, format)),
        ..QuantConfig::default()
    })
}

/// `{"group_size": 64, "bits": 4, "mode": "affine", "<module>": {...} | false}`.
fn mlx(q: &Value) -> Result<QuantConfig> {
    let default = mlx_params(q, MlxParams::DEFAULT)?;
    let mut layers = BTreeMap::new();
    for (key, v) in q.as_object().into_iter().flatten() {
        match v {
            Value::Object(_) => {
                layers.insert(key.clone(), Some(mlx_params(v, default)?));
            }
            Value::Bool(false) => {
                layers.insert(key.clone(), None);
            }
            _ => {}
        }
    }
    Ok(QuantConfig {
        declared: true,
        mlx: Some((default, layers)),
        ..QuantConfig::default()
    })
}

fn mlx_params(v: &Value, fallback: MlxParams) -> Result<MlxParams> {
    match v.get("mode").and_then(Value::as_str) {
        None | Some("affine") => {}
        Some(m) => return Err(cfg_err(format!("MLX quantization mode `{m}` is not read"))),
    }
    let group = match v.get("group_size") {
        Some(g) => usize_of(g, "group_size")?,
        None => fallback.group(),
    };
    let bits = match v.get("bits") {
        Some(b) => usize_of(b, "bits")? as u32,
        None => fallback.bits(),
    };
    MlxParams::new(group, bits).map_err(|e| cfg_err(format!("MLX quantization: {e}")))
}
