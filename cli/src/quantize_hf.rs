//! `wharf quantize SRC -o OUT --scheme fp8-block|ct-fp8-block|fp8-channel|fp8`: an HF folder
//! (shards + index, config with the scheme's `quantization_config`, tokenizer copied) from any
//! source wharf reads; quantized sources are dequantized first.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use wharf_converters::AnySource;
use wharf_converters::atomic::{AtomicDir, ensure_not_input};
use wharf_converters::hf::{Fp8Scheme, plan_fp8};
use wharf_converters::pipeline;
use wharf_converters::safetensors::{ShardedWriter, plan_shards};
use wharf_core::{TensorMeta, TensorSink};

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

pub fn run(src_path: &Path, output: &Path, scheme: &str) -> Result<()> {
    let Some(fp8) = fp8_scheme(scheme) else {
        bail!("unknown scheme `{scheme}` (gguf:<TYPE>, fp8, fp8-channel, fp8-block, ct-fp8-block)");
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
