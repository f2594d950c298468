//! `wharf convert SRC -o OUT [--to safetensors|gguf] [--dtype f32|f16|bf16|keep] [--pre NAME]
//! [--config CONFIG.json]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use wharf_converters::AnySource;
use wharf_converters::atomic::{AtomicDir, ensure_not_input};
use wharf_converters::hf::storage::QuantizedView;
use wharf_converters::hf::{GgufOptions, HfToGguf, OutType};
use wharf_converters::pipeline::{self, Planned};
use wharf_converters::safetensors::{SafetensorsWriter, ShardedWriter, plan_shards};
use wharf_core::{DType, TensorMeta, TensorSink, TensorSource};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum To {
    Safetensors,
    Gguf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
    Keep,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source: HF folder, safetensors file, GGUF file, PyTorch `.bin`/`.pt` checkpoint or
    /// ONNX model.
    pub src: PathBuf,
    /// The HF `config.json` of an ONNX export: its initializers are then read under HF names,
    /// so it converts to GGUF (tokenizer files are taken from the config's folder).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output file (`.gguf`, `.safetensors`) or folder (an HF folder with shards and index).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Output format; defaults from the output's extension.
    #[arg(long, value_enum)]
    pub to: Option<To>,
    /// Storage of float weights (norms and biases stay F32 in GGUF, as llama.cpp keeps them).
    #[arg(long, value_enum, default_value = "keep")]
    pub dtype: Dtype,
    /// Override `tokenizer.ggml.pre` (GGUF output).
    #[arg(long)]
    pub pre: Option<String>,
    /// Largest shard of a folder output, in bytes.
    #[arg(long, default_value_t = 5_000_000_000)]
    pub shard_size: u64,
    #[command(flatten)]
    pub split: crate::split::SplitArgs,
}

pub fn run(args: Args) -> Result<()> {
    let splitting = args.split.by()?.is_some();
    let src = AnySource::open_with_config(&args.src, args.config.as_deref())?;
    crate::warn_source(&src);
    ensure_not_input(&args.output, &src.paths())?;
    let to = match args.to {
        Some(t) => t,
        None if args.output.extension().is_some_and(|e| e == "gguf") => To::Gguf,
        None => To::Safetensors,
    };
    if splitting && to != To::Gguf {
        bail!(
            "--split-max-size and --split-max-tensors cut a GGUF output; this output is safetensors"
        );
    }
    let n = match to {
        To::Gguf => to_gguf(&src, &args)?,
        // A GGUF written back as an HF folder gets HF names, layouts and config.json.
        To::Safetensors if is_folder_target(&args.output) && matches!(src, AnySource::Gguf(_)) => {
            let dtype = match args.dtype {
                Dtype::F16 => DType::F16,
                Dtype::Bf16 => DType::BF16,
                Dtype::F32 | Dtype::Keep => DType::F32,
            };
            drop(src);
            wharf_targets::hf_from_gguf::write(&args.src, &args.output, dtype)?
        }
        To::Safetensors if is_folder_target(&args.output) => to_folder(&src, &args)?,
        To::Safetensors => to_safetensors_file(&src, &args)?,
    };
    println!("wrote {} ({n} tensors)", args.output.display());
    Ok(())
}

fn is_folder_target(out: &Path) -> bool {
    out.is_dir() || out.extension().is_none()
}

fn out_type(d: Dtype) -> OutType {
    match d {
        Dtype::F32 => OutType::F32,
        Dtype::F16 => OutType::F16,
        Dtype::Bf16 => OutType::BF16,
        Dtype::Keep => OutType::Keep,
    }
}

fn to_gguf(src: &AnySource, args: &Args) -> Result<usize> {
    let opts = GgufOptions {
        out: out_type(args.dtype),
        pre: args.pre.clone(),
    };
    let job = HfToGguf::new(src, &opts)
        .with_context(|| format!("{}: cannot write GGUF", args.src.display()))?;
    let metas = job.metas();
    let mut bar = crate::progress::Bar::new("converting");
    let files = job.write(&args.output, args.split.by()?, &mut bar.for_metas(&metas))?;
    drop(bar);
    if files.len() > 1 {
        println!("wrote {} files: {} ...", files.len(), files[0].display());
    }
    Ok(metas.len())
}

/// The input's logical tensors: quantized weights (DeepSeek FP8, compressed-tensors, GPTQ,
/// MLX) appear under their HF names as F32, dequantized on read.
pub(crate) fn logical_view(src: &AnySource) -> Result<QuantizedView<'_>> {
    let config = match src {
        AnySource::Safetensors {
            config: Some((v, _)),
            ..
        }
        | AnySource::Torch {
            config: Some((v, _)),
            ..
        }
        | AnySource::Onnx {
            config: Some((v, _)),
            ..
        } => Some(v),
        _ => None,
    };
    Ok(QuantizedView::new(src, config)?)
}

/// Same names and shapes; float storage per `--dtype`.
fn same_names_plan(src: &dyn TensorSource, dtype: Dtype) -> Result<Vec<Planned>> {
    src.tensors()
        .iter()
        .map(|m| {
            let out = match dtype {
                _ if !m.dtype.is_float() => m.dtype,
                Dtype::F32 => DType::F32,
                Dtype::F16 => DType::F16,
                Dtype::Bf16 => DType::BF16,
                Dtype::Keep => m.dtype,
            };
            if m.dtype.is_ggml_block() {
                bail!("tensor `{}` is {}: dequantizing GGML blocks to safetensors is not supported yet", m.name, m.dtype);
            }
            Ok(Planned::simple(TensorMeta::new(m.name.clone(), out, m.shape.clone()), m.name.clone()))
        })
        .collect()
}

fn plan_metas(plan: &[Planned]) -> Vec<TensorMeta> {
    plan.iter().map(|p| p.meta.clone()).collect()
}

fn to_safetensors_file(src: &AnySource, args: &Args) -> Result<usize> {
    let view = logical_view(src)?;
    let plan = same_names_plan(&view, args.dtype)?;
    let mut w = SafetensorsWriter::create(&args.output, plan_metas(&plan), &BTreeMap::new())?;
    let mut bar = crate::progress::Bar::new("converting");
    pipeline::run(&view, &plan, &mut w, &mut bar.for_metas(&plan_metas(&plan)))?;
    w.commit()?;
    Ok(plan.len())
}

fn to_folder(src: &AnySource, args: &Args) -> Result<usize> {
    let view = logical_view(src)?;
    let plan = same_names_plan(&view, args.dtype)?;
    let metas: Vec<TensorMeta> = plan.iter().map(|p| p.meta.clone()).collect();
    let shards = plan_shards(&metas, args.shard_size)?;
    let out = AtomicDir::create(&args.output)?;
    let mut meta = BTreeMap::new();
    meta.insert("format".to_owned(), "pt".to_owned());
    let mut w = Box::new(ShardedWriter::new(out.path(), shards, meta));
    let mut bar = crate::progress::Bar::new("converting");
    pipeline::run(&view, &plan, w.as_mut(), &mut bar.for_metas(&metas))?;
    w.finish()?;
    if let AnySource::Safetensors { dir: Some(dir), .. } | AnySource::Torch { dir: Some(dir), .. } =
        src
    {
        copy_side_files(dir, out.path())?;
        if view.is_quantized() {
            write_dense_config(dir, out.path())?;
        }
    } else if let Some(input) = src.hf() {
        // An ONNX export with its config: an HF folder needs the config under its own name.
        copy_side_files(input.dir, out.path())?;
        let mut text = serde_json::to_string_pretty(input.config)?;
        text.push('\n');
        std::fs::write(out.path().join("config.json"), text)?;
    }
    out.commit()?;
    Ok(plan.len())
}

/// config.json without the blocks that declare quantized storage (`quantization_config`,
/// MLX's `quantization`): the weights written are dense. Key order is kept.
fn write_dense_config(from: &Path, to: &Path) -> Result<()> {
    let path = from.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut config: serde_json::Value = serde_json::from_str(&text)?;
    if let Some(o) = config.as_object_mut() {
        o.shift_remove("quantization_config");
        o.shift_remove("quantization");
    }
    let mut out = serde_json::to_string_pretty(&config)?;
    out.push('\n');
    std::fs::write(to.join("config.json"), out)?;
    Ok(())
}

/// Config, generation config and tokenizer files travel with the weights.
pub(crate) fn copy_side_files(from: &Path, to: &Path) -> Result<()> {
    for name in [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        let p = from.join(name);
        if p.is_file() {
            std::fs::copy(&p, to.join(name)).with_context(|| format!("copying {}", p.display()))?;
        }
    }
    Ok(())
}
