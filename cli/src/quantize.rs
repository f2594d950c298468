//! `wharf quantize SRC -o OUT --scheme gguf:<TYPE> [llama-quantize flags]`.
//!
//! One streaming pass: the source (an HF folder, or an F32/F16/BF16 GGUF) is planned as
//! llama.cpp's converter would write it, tensors are ordered and typed as llama-quantize does
//! (`src/llama-quant.cpp`, `llama-model-loader.h` `weight_name_comparer`), and each tensor is
//! quantized as it is written.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use wharf_converters::AnySource;
use wharf_converters::atomic::ensure_not_input;
use wharf_converters::gguf::{GgufWriter, Value};
use wharf_converters::hf::{GgufOptions, OutType, plan_gguf};
use wharf_converters::pipeline::{self, Planned};
use wharf_core::{DType, TensorMeta, TensorSource};
use wharf_quantizers::ggml::mix::{Mix, MixOptions, ModelFacts, choose_types};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source: HF folder or an F32/F16/BF16 GGUF.
    src: PathBuf,
    /// Output GGUF file.
    #[arg(short, long)]
    output: PathBuf,
    /// `gguf:<TYPE>` with a llama-quantize type name (Q4_K_M, Q8_0, ...).
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
}

pub fn run(args: Args) -> Result<()> {
    let Some(ty) = args.scheme.strip_prefix("gguf:") else {
        return crate::quantize_hf::run(&args.src, &args.output, &args.scheme);
    };
    let mix: Mix = ty
        .parse()
        .map_err(|e| anyhow::anyhow!("scheme `{}`: {e}", args.scheme))?;
    let src = AnySource::open(&args.src)?;
    ensure_not_input(&args.output, &src.paths())?;
    let (kvs, mut plan) = base_plan(&src, &args)?;
    plan.sort_by(|a, b| loader_order(&a.meta.name, &b.meta.name));
    let facts = facts(&kvs);
    let shapes: Vec<(String, Vec<u64>)> = plan
        .iter()
        .map(|p| (p.meta.name.clone(), p.meta.shape.dims().to_vec()))
        .collect();
    let types = choose_types(mix, &options(&args)?, &facts, &shapes);
    for (p, t) in plan.iter_mut().zip(types) {
        p.meta.dtype = t;
    }
    let kvs = quantized_kvs(kvs, mix.file_type());
    let metas: Vec<TensorMeta> = plan.iter().map(|p| p.meta.clone()).collect();
    let mut w = GgufWriter::create(&args.output, &kvs, &metas, None)?;
    let encode = |m: &TensorMeta, v: &[f32], out: &mut [u8]| {
        wharf_quantizers::ggml::quantize(m.dtype, v, m.shape.row_len() as usize, None, out)
            .map_err(|e| e.to_string())
    };
    pipeline::run_with(&src, &plan, &mut w, &mut |_| {}, Some(&encode))?;
    w.commit()?;
    println!(
        "wrote {} ({} tensors, {})",
        args.output.display(),
        metas.len(),
        ty
    );
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

type Kvs = Vec<(String, Value)>;

/// The converter's F32 plan for an HF folder, or the tensors of a float GGUF as they are.
fn base_plan(src: &AnySource, args: &Args) -> Result<(Kvs, Vec<Planned>)> {
    match src {
        AnySource::Safetensors {
            source,
            dir: Some(dir),
            config: Some((config, spec)),
        } => {
            let p = plan_gguf(
                source,
                dir,
                config,
                spec,
                &GgufOptions {
                    out: OutType::F32,
                    pre: None,
                },
            )?;
            Ok((p.kvs, p.tensors))
        }
        AnySource::Gguf(g) => {
            let plan = g
                .tensors()
                .iter()
                .map(|m| {
                    if !m.dtype.is_float() {
                        bail!(
                            "tensor `{}` is already {}; requantizing is not supported yet",
                            m.name,
                            m.dtype
                        );
                    }
                    Ok(Planned::simple(
                        TensorMeta::new(m.name.clone(), DType::F32, m.shape.clone()),
                        m.name.clone(),
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((g.kvs().to_vec(), plan))
        }
        _ => bail!(
            "{}: quantizing needs an HF folder with config.json or a GGUF file",
            args.src.display()
        ),
    }
}

/// llama.cpp's loader order: tensors outside blocks first, then by block index, then by name.
fn loader_order(a: &str, b: &str) -> std::cmp::Ordering {
    let layer = |n: &str| -> i64 {
        n.strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|l| l.parse().ok())
            .unwrap_or(-1)
    };
    (layer(a), a).cmp(&(layer(b), b))
}

fn facts(kvs: &[(String, Value)]) -> ModelFacts {
    let get = |k: &str| kvs.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let arch = get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or("llama")
        .to_owned();
    let num = |k: &str| {
        get(&format!("{arch}.{k}"))
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0)
    };
    ModelFacts {
        n_layer: num("block_count"),
        n_head: num("attention.head_count"),
        n_head_kv: num("attention.head_count_kv"),
        n_expert: num("expert_count"),
        // llama.cpp derives this from the 70B size class; the 80-layer family is its only member.
        is_70b: num("block_count") == 80 && arch == "llama",
        arch,
    }
}

/// llama-quantize copies the input metadata and re-sets these two keys (gguf.cpp moves a
/// re-set key to the end).
fn quantized_kvs(mut kvs: Vec<(String, Value)>, file_type: u32) -> Vec<(String, Value)> {
    kvs.retain(|(k, _)| {
        k != "general.quantization_version" && k != "general.file_type" && !k.starts_with("split.")
    });
    kvs.push(("general.quantization_version".into(), Value::U32(2)));
    kvs.push(("general.file_type".into(), Value::U32(file_type)));
    kvs
}
