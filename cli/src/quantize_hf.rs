//! `wharf quantize SRC -o OUT --scheme fp8-block|ct-fp8-block|fp8-channel|fp8`: an HF folder
//! (shards + index, config with the scheme's `quantization_config`, tokenizer copied) from any
//! source wharf reads; quantized sources are dequantized first.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use wharf_converters::AnySource;
use wharf_converters::atomic::{AtomicDir, ensure_not_input};
use wharf_converters::hf::{Fp8Scheme, plan_fp8, plan_mlx};
use wharf_converters::pipeline;
use wharf_converters::safetensors::{ShardedWriter, plan_shards};
use wharf_core::{TensorMeta, TensorSink};
use wharf_quantizers::mlx::MlxParams;

use crate::convert::{copy_side_files, logical_view};

/// Largest shard, as transformers' `save_pretrained` default.
const SHARD_BYTES: u64 = 5_000_000_000;

fn fp8_scheme(name: &str) -> Option<Fp8Scheme> {
    Some(match name {
        "fp8-block" => Fp8Scheme::DeepseekBlock,
        "ct-fp8-block" => Fp8Scheme::CtBlock,
        "fp8-channel" => Fp8Scheme::CtChannel,
        "fp8" => Fp8Scheme::CtTensor,
        _ => return None,
    })
}

/// `mlx4`, `mlx8` (group 64, mlx-lm's default) or `mlx<B>g<G>`.
fn mlx_scheme(name: &str) -> Option<Result<MlxParams>> {
    let rest = name.strip_prefix("mlx")?;
    let (bits, group) = match rest.split_once('g') {
        Some((b, g)) => (b.parse().ok()?, g.parse().ok()?),
        None => (rest.parse().ok()?, 64),
    };
    Some(MlxParams::new(group, bits).map_err(|e| anyhow::anyhow!("scheme `{name}`: {e}")))
}

pub fn run(src_path: &Path, output: &Path, scheme: &str) -> Result<()> {
    if let Some(params) = mlx_scheme(scheme) {
        return run_mlx(src_path, output, scheme, params?);
    }
    let Some(fp8) = fp8_scheme(scheme) else {
        bail!(
            "unknown scheme `{scheme}` (gguf:<TYPE>, fp8, fp8-channel, fp8-block, ct-fp8-block, mlx4, mlx8, mlx<B>g<G>)"
        );
    };
    let src = AnySource::open(src_path)?;
    ensure_not_input(output, &src.paths())?;
    let AnySource::Safetensors {
        dir: Some(dir),
        config: Some((config, _)),
        ..
    } = &src
    else {
        bail!(
            "{}: FP8 output needs an HF folder with config.json",
            src_path.display()
        );
    };
    let view = logical_view(&src)?;
    let plan = plan_fp8(&view, config, fp8)?;
    let metas: Vec<TensorMeta> = plan.tensors.iter().map(|p| p.meta.clone()).collect();
    let shards = plan_shards(&metas, SHARD_BYTES)?;
    let out = AtomicDir::create(output)?;
    let meta = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
    let mut w = Box::new(ShardedWriter::new(out.path(), shards, meta));
    let encode = |m: &TensorMeta, v: &[f32], o: &mut [u8]| plan.encode(m, v, o);
    pipeline::run_with(&view, &plan.tensors, w.as_mut(), &mut |_| {}, Some(&encode))?;
    w.finish()?;
    copy_side_files(dir, out.path())?;
    let mut text = serde_json::to_string_pretty(&plan.config)?;
    text.push('\n');
    std::fs::write(out.path().join("config.json"), text)?;
    out.commit()?;
    println!(
        "wrote {} ({} tensors, {scheme})",
        output.display(),
        metas.len()
    );
    Ok(())
}

fn run_mlx(src_path: &Path, output: &Path, scheme: &str, params: MlxParams) -> Result<()> {
    let src = AnySource::open(src_path)?;
    ensure_not_input(output, &src.paths())?;
    let AnySource::Safetensors {
        dir: Some(dir),
        config: Some((config, _)),
        ..
    } = &src
    else {
        bail!(
            "{}: MLX output needs an HF folder with config.json",
            src_path.display()
        );
    };
    let view = logical_view(&src)?;
    let plan = plan_mlx(&view, config, params)?;
    let metas: Vec<TensorMeta> = plan.tensors.iter().map(|p| p.meta.clone()).collect();
    let shards = plan_shards(&metas, SHARD_BYTES)?;
    let index = plan.index_json(&shards.shards)?;
    let out = AtomicDir::create(output)?;
    let meta = BTreeMap::from([("format".to_owned(), "mlx".to_owned())]);
    let mut w = Box::new(ShardedWriter::new(out.path(), shards, meta));
    let encode = |m: &TensorMeta, v: &[f32], o: &mut [u8]| plan.encode(m, v, o);
    pipeline::run_with(&view, &plan.tensors, w.as_mut(), &mut |_| {}, Some(&encode))?;
    w.finish()?;
    copy_side_files(dir, out.path())?;
    std::fs::write(out.path().join("model.safetensors.index.json"), index)?;
    let mut text = serde_json::to_string_pretty(&plan.config)?;
    text.push('\n');
    std::fs::write(out.path().join("config.json"), text)?;
    out.commit()?;
    println!(
        "wrote {} ({} tensors, {scheme})",
        output.display(),
        metas.len()
    );
    Ok(())
}
