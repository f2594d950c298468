//! `wharf quantize SRC -o OUT --scheme gguf:<TYPE> [llama-quantize flags]`.
//!
//! One streaming pass: the source (an HF folder, or an F32/F16/BF16 GGUF) is planned as
//! llama.cpp's converter would write it, tensors are ordered and typed as llama-quantize does
//! (`src/llama-quant.cpp`, `llama-model-loader.h` `weight_name_comparer`), and each tensor is
//! quantized as it is written.

use std::path::PathBuf;

use anyhow::{Context, Result};
use wharf_converters::AnySource;
use wharf_converters::atomic::ensure_not_input;
use wharf_converters::imatrix::Imatrix;
use wharf_core::DType;
use wharf_quantizers::ggml::mix::{Mix, MixOptions};
use wharf_targets::gguf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source: HF folder (safetensors or PyTorch), ONNX export with --config, or an
    /// F32/F16/BF16 GGUF (a quantized GGUF with --allow-requantize).
    src: PathBuf,
    /// The HF `config.json` of an ONNX export: its initializers are read under HF names
    /// (tokenizer files are taken from the config's folder).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output GGUF file (a folder for the HF schemes).
    #[arg(short, long)]
    output: PathBuf,
    /// `gguf:<TYPE>` with a llama-quantize type name (Q4_K_M, Q8_0, ...), or an HF folder scheme:
    /// fp8, fp8-channel, fp8-block, ct-fp8-block, int4, int4-asym, mlx4, mlx8, mlx<B>g<G>.
    #[arg(long)]
    scheme: String,
    /// Every quantized tensor gets the scheme's base type (no mix rules).
    #[arg(long)]
    pure: bool,
    /// Leave output.weight unquantized.
    #[arg(long)]
    leave_output_tensor: bool,
    /// Type for output.weight.
    #[arg(long)]
    output_tensor_type: Option<DType>,
    /// Type for token_embd.weight.
    #[arg(long)]
    token_embedding_type: Option<DType>,
    /// `PATTERN=TYPE`: tensors whose name matches PATTERN get TYPE (repeatable).
    #[arg(long = "tensor-type")]
    tensor_type: Vec<String>,
    /// Importance matrix from llama-imatrix (GGUF, or the legacy `.dat` format).
    #[arg(long)]
    imatrix: Option<PathBuf>,
    /// Accept a quantized GGUF source: its tensors are dequantized and quantized again.
    #[arg(long)]
    allow_requantize: bool,
    #[command(flatten)]
    split: crate::split::SplitArgs,
}

pub fn run(args: Args) -> Result<()> {
    let Some(ty) = args.scheme.strip_prefix("gguf:") else {
        if args.split.by()?.is_some() {
            anyhow::bail!(
                "--split-max-size and --split-max-tensors cut a GGUF output (gguf:<TYPE> schemes)"
            );
        }
        return crate::quantize_hf::run(
            &args.src,
            args.config.as_deref(),
            &args.output,
            &args.scheme,
        );
    };
    let mix: Mix = ty
        .parse()
        .map_err(|e| anyhow::anyhow!("scheme `{}`: {e}", args.scheme))?;
    let src = AnySource::open_with_config(&args.src, args.config.as_deref())?;
    crate::warn_source(&src);
    ensure_not_input(&args.output, &src.paths())?;
    let imatrix = match &args.imatrix {
        Some(p) => Some((Imatrix::load(p)?, p.to_string_lossy().into_owned())),
        None => None,
    };
    let extras = gguf::Extras {
        imatrix: imatrix.as_ref().map(|(m, name)| (m, name.as_str())),
        allow_requantize: args.allow_requantize,
    };
    let job = gguf::plan_with(&src, mix, &options(&args)?, extras)?.split_by(args.split.by()?);
    let mut bar = crate::progress::Bar::new("quantizing");
    let files = gguf::write(&src, &job, &args.output, None, &mut |s| bar.step(s))?;
    drop(bar);
    let shown = match files.as_slice() {
        [one] => one.display().to_string(),
        many => format!("{} files: {} ...", many.len(), many[0].display()),
    };
    println!("wrote {shown} ({} tensors, {ty})", job.plan.len());
    Ok(())
}

fn options(args: &Args) -> Result<MixOptions> {
    let overrides = args
        .tensor_type
        .iter()
        .map(|s| {
            let (pat, t) = s
                .split_once('=')
                .context("--tensor-type wants PATTERN=TYPE")?;
            Ok((pat.to_owned(), t.parse::<DType>()?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(MixOptions {
        pure: args.pure,
        leave_output_tensor: args.leave_output_tensor,
        output_tensor_type: args.output_tensor_type,
        token_embedding_type: args.token_embedding_type,
        tensor_type_overrides: overrides,
        imatrix: false,
    })
}
