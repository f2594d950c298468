//! `wharf inspect PATH [--json]`.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::{Value, json};
use wharf_converters::AnySource;
use wharf_converters::hf::storage::{LogicalTensor, Storage, stored_names};
use wharf_core::TensorSource;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A safetensors file, HF folder, GGUF file, PyTorch `.bin`/`.pt` checkpoint, ONNX model or
    /// bundle folder.
    path: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// The HF `config.json` of an ONNX export: list its weights under HF names.
    #[arg(long)]
    config: Option<PathBuf>,
    /// List the tensors as stored (FP8 scales, packed codes and their companions each on its
    /// own line) instead of one line per logical weight.
    #[arg(long)]
    raw: bool,
}

pub fn run(args: Args) -> Result<()> {
    // A bundle folder: describe its manifest and the model file it ships.
    let manifest_path = args.path.join(wharf_manifests::MANIFEST_FILE);
    let bundle = if args.path.is_dir() && manifest_path.is_file() {
        let bytes = std::fs::read(&manifest_path)?;
        Some(wharf_manifests::Manifest::parse(&bytes, &manifest_path)?)
    } else {
        None
    };
    let model = match &bundle {
        Some(m) if m.reference.model != "." => args.path.join(&m.reference.model),
        _ => args.path.clone(),
    };
    let src = AnySource::open_with_config(&model, args.config.as_deref())?;
    crate::warn_source(&src);
    let mut report = report(&src, args.raw)?;
    if let Some(m) = bundle {
        report["bundle"] = json!({
            "schema": m.schema,
            "target": m.target.get("name"),
            "scheme": m.recipe.scheme,
            "source": m.source.name,
            "files": m.files.len(),
            "bytes": m.files.iter().map(|f| f.bytes).sum::<u64>(),
            "model": m.reference.model,
            "metrics": {
                "passed": m.reference.metrics.passed,
                "top1": m.reference.metrics.top1,
                "mean_kl": m.reference.metrics.mean_kl,
                "max_kl": m.reference.metrics.max_kl,
            },
        });
    }
    if args.json {
        crate::emit(&(serde_json::to_string_pretty(&report)? + "\n"))
    } else {
        crate::emit(&text(&report))
    }
}

/// The inspect report as JSON (the `--json` schema, documented in the README).
///
/// Quantized weights are listed once, under their logical HF name and shape, with the dtype
/// of their codes, a `storage` description and the bytes of all their stored tensors; `raw`
/// lists the stored tensors instead. Tensors of DeepSeek's multi-token-prediction module
/// (layers past `num_hidden_layers`) are marked `"mtp": true` and summed under `"mtp"`.
pub fn report(src: &AnySource, raw: bool) -> Result<Value> {
    let view = crate::convert::logical_view(src)?;
    let mut params = 0u64;
    let mut bytes = 0u64;
    let mtp_from = mtp_layers(src).map(|(first, _)| first);
    let is_mtp = |name: &str| mtp_from.is_some_and(|f| layer_of(name).is_some_and(|l| l >= f));
    let (mut mtp_tensors, mut mtp_bytes) = (0u64, 0u64);
    let mut tensors: Vec<Value> = view
        .logical()
        .iter()
        .map(|t| {
            let (n, b) = (t.meta.numel().unwrap_or(0), stored_bytes(src, t));
            params += n;
            bytes += b;
            let stored = stored_names(&t.meta.name, &t.storage);
            let dtype = stored
                .first()
                .and_then(|s| src.meta(s))
                .map_or(t.meta.dtype, |m| m.dtype);
            let mut v = json!({"name": t.meta.name, "dtype": dtype.name(), "shape": t.meta.shape.dims(), "bytes": b});
            if t.storage != Storage::Dense {
                v["storage"] = Value::String(t.storage.describe());
            }
            if is_mtp(&t.meta.name) {
                v["mtp"] = Value::Bool(true);
                (mtp_tensors, mtp_bytes) = (mtp_tensors + 1, mtp_bytes + b);
            }
            v
        })
        .collect();
    if raw {
        tensors = src
            .tensors()
            .iter()
            .map(|m| {
                let mut v = json!({"name": m.name, "dtype": m.dtype.name(), "shape": m.shape.dims(),
                    "bytes": m.nbytes().unwrap_or(0)});
                if is_mtp(&m.name) {
                    v["mtp"] = Value::Bool(true);
                }
                v
            })
            .collect();
    }
    let metadata = match src {
        AnySource::Gguf(g) => g
            .kvs()
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
            .collect(),
        AnySource::Safetensors { source, .. } => source
            .metadata()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
        AnySource::Torch { .. } | AnySource::Onnx { .. } => serde_json::Map::new(),
    };
    let mut out = json!({
        "format": src.format().name(),
        "architecture": src.spec().map(|s| s.arch.model_type()).or_else(|| gguf_arch(src)),
        "parameters": params,
        "bytes": bytes,
        "tensors": tensors,
        "metadata": Value::Object(metadata),
    });
    if let Some((first, count)) = mtp_layers(src).filter(|_| mtp_tensors > 0) {
        out["mtp"] = json!({"layers": (first..first + count).collect::<Vec<_>>(),
            "tensors": mtp_tensors, "bytes": mtp_bytes});
    }
    Ok(out)
}

/// DeepSeek's multi-token-prediction layers: the first layer index and how many
/// (`num_hidden_layers`, `num_nextn_predict_layers` of config.json).
fn mtp_layers(src: &AnySource) -> Option<(u64, u64)> {
    let config = src.hf()?.config;
    let get = |k: &str| config.get(k).and_then(Value::as_u64);
    let n = get("num_nextn_predict_layers").filter(|&n| n > 0)?;
    Some((get("num_hidden_layers")?, n))
}

/// The block index of `model.layers.N.…`.
fn layer_of(name: &str) -> Option<u64> {
    name.strip_prefix("model.layers.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Bytes of every stored tensor behind `t`.
fn stored_bytes(src: &AnySource, t: &LogicalTensor) -> u64 {
    stored_names(&t.meta.name, &t.storage)
        .iter()
        .filter_map(|n| src.meta(n))
        .map(|m| m.nbytes().unwrap_or(0))
        .sum()
}

fn gguf_arch(src: &AnySource) -> Option<&str> {
    match src {
        AnySource::Gguf(g) => g.get("general.architecture").and_then(|v| v.as_str()),
        _ => None,
    }
}

fn text(r: &Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if let Some(b) = r.get("bundle") {
        let _ = writeln!(
            s,
            "bundle:       {} for {} ({}, from {}; {} files, {} bytes; reference passed: {})",
            b["schema"].as_str().unwrap_or("?"),
            b["target"].as_str().unwrap_or("?"),
            b["scheme"].as_str().unwrap_or("?"),
            b["source"].as_str().unwrap_or("?"),
            b["files"],
            b["bytes"],
            b["metrics"]["passed"]
        );
    }
    let _ = writeln!(s, "format:       {}", r["format"].as_str().unwrap_or("?"));
    let _ = writeln!(
        s,
        "architecture: {}",
        r["architecture"].as_str().unwrap_or("unknown")
    );
    let _ = writeln!(s, "parameters:   {}", r["parameters"]);
    let _ = writeln!(s, "bytes:        {}", r["bytes"]);
    if let Some(m) = r.get("mtp") {
        let _ = writeln!(
            s,
            "mtp:          layers {} hold DeepSeek's multi-token-prediction module ({} tensors, {} \
             bytes, marked MTP below): a speculative-decoding head vLLM and SGLang can load, kept \
             in HF/FP8 outputs; llama.cpp's converter and mlx-lm leave it out, and so do wharf's \
             GGUF and MLX outputs; the reference pass does not run it",
            m["layers"], m["tensors"], m["bytes"]
        );
    }
    if let Some(meta) = r["metadata"].as_object().filter(|m| !m.is_empty()) {
        let _ = writeln!(s, "metadata:");
        for (k, v) in meta {
            let _ = writeln!(s, "  {k} = {}", v.as_str().unwrap_or_default());
        }
    }
    let _ = writeln!(s, "tensors:");
    for t in r["tensors"].as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or_default();
        let dtype = t["dtype"].as_str().unwrap_or_default();
        let storage = t["storage"].as_str().map(|x| format!("  ({x})"));
        let mtp = if t["mtp"] == true { "  MTP" } else { "" };
        let _ = writeln!(
            s,
            "  {name:<48} {dtype:<8} {:<20} {}{}{mtp}",
            t["shape"].to_string(),
            t["bytes"],
            storage.unwrap_or_default()
        );
    }
    s
}
