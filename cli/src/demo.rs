//! `wharf demo`: the main job on the embedded tiny model, end to end, with every output checked.
//!
//! The model is the fixture llama's config and tokenizer with weights drawn from a fixed-seed
//! generator (so the binary stays small). It is written as an HF folder, converted to GGUF
//! (F32 and BF16) and back to safetensors, and every output is re-opened with the strict
//! readers and compared with the source.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, ensure};
use wharf_converters::AnySource;
use wharf_converters::safetensors::SafetensorsWriter;
use wharf_core::{DType, TensorMeta, TensorSink, TensorSource};

use crate::CheckFailed;
use crate::convert::{self, Dtype, To};

const CONFIG: &str = include_str!("../../tests/data/fixtures/models/llama/config.json");
const TOKENIZER: &str = include_str!("../../tests/data/fixtures/models/llama/tokenizer.json");
const TOKENIZER_CONFIG: &str =
    include_str!("../../tests/data/fixtures/models/llama/tokenizer_config.json");

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep the outputs in this folder instead of a temporary one.
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
}

/// xorshift64*: a fixed, documented sequence, identical on every host.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        (bits as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
    }
}

fn tiny_tensors() -> Vec<TensorMeta> {
    let (h, ff, v, kv) = (256u64, 768u64, 1024u64, 128u64);
    let mut t = vec![
        TensorMeta::new("lm_head.weight", DType::F32, vec![v, h]),
        TensorMeta::new("model.embed_tokens.weight", DType::F32, vec![v, h]),
    ];
    for l in 0..2 {
        let p = format!("model.layers.{l}");
        t.push(TensorMeta::new(
            format!("{p}.input_layernorm.weight"),
            DType::F32,
            vec![h],
        ));
        t.push(TensorMeta::new(
            format!("{p}.mlp.down_proj.weight"),
            DType::F32,
            vec![h, ff],
        ));
        t.push(TensorMeta::new(
            format!("{p}.mlp.gate_proj.weight"),
            DType::F32,
            vec![ff, h],
        ));
        t.push(TensorMeta::new(
            format!("{p}.mlp.up_proj.weight"),
            DType::F32,
            vec![ff, h],
        ));
        t.push(TensorMeta::new(
            format!("{p}.post_attention_layernorm.weight"),
            DType::F32,
            vec![h],
        ));
        t.push(TensorMeta::new(
            format!("{p}.self_attn.k_proj.weight"),
            DType::F32,
            vec![kv, h],
        ));
        t.push(TensorMeta::new(
            format!("{p}.self_attn.o_proj.weight"),
            DType::F32,
            vec![h, h],
        ));
        t.push(TensorMeta::new(
            format!("{p}.self_attn.q_proj.weight"),
            DType::F32,
            vec![h, h],
        ));
        t.push(TensorMeta::new(
            format!("{p}.self_attn.v_proj.weight"),
            DType::F32,
            vec![kv, h],
        ));
    }
    t.push(TensorMeta::new("model.norm.weight", DType::F32, vec![h]));
    t
}

fn write_model(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), CONFIG)?;
    std::fs::write(dir.join("tokenizer.json"), TOKENIZER)?;
    std::fs::write(dir.join("tokenizer_config.json"), TOKENIZER_CONFIG)?;
    let metas = tiny_tensors();
    let mut w = SafetensorsWriter::create(
        dir.join("model.safetensors"),
        metas.clone(),
        &BTreeMap::new(),
    )?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for m in &metas {
        let n = m.numel()? as usize;
        let norm = m.name.ends_with("norm.weight");
        let bytes: Vec<u8> = (0..n)
            .flat_map(|_| if norm { 1.0f32 } else { rng.next_f32() }.to_le_bytes())
            .collect();
        w.write(&m.name, &bytes)?;
    }
    w.commit()?;
    Ok(())
}

fn convert(src: &Path, out: &Path, to: To, dtype: Dtype) -> Result<()> {
    convert::run(convert::Args {
        src: src.into(),
        output: out.into(),
        to: Some(to),
        dtype,
        pre: None,
        shard_size: 5_000_000_000,
    })
}

pub fn run(args: Args) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = args
        .keep
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let model = root.join("tiny-llama");
    write_model(&model)?;
    let f32_gguf = root.join("tiny-llama-f32.gguf");
    let bf16_gguf = root.join("tiny-llama-bf16.gguf");
    let back = root.join("tiny-llama-from-gguf.safetensors");
    convert(&model, &f32_gguf, To::Gguf, Dtype::F32)?;
    convert(&model, &bf16_gguf, To::Gguf, Dtype::Bf16)?;
    convert(&f32_gguf, &back, To::Safetensors, Dtype::Keep)?;
    let source = AnySource::open(&model)?;
    let rows = [
        check(
            &f32_gguf,
            &source,
            "token_embd.weight",
            "model.embed_tokens.weight",
        )?,
        check(
            &bf16_gguf,
            &source,
            "blk.0.attn_norm.weight",
            "model.layers.0.input_layernorm.weight",
        )?,
        check(
            &back,
            &source,
            "blk.1.ffn_down.weight",
            "model.layers.1.mlp.down_proj.weight",
        )?,
    ];
    println!(
        "{:<36} {:<16} {:>8} {:>10}  check",
        "output", "format", "tensors", "bytes"
    );
    for (path, format, tensors, bytes) in &rows {
        println!("{path:<36} {format:<16} {tensors:>8} {bytes:>10}  ok");
    }
    Ok(())
}

/// Re-opens `out` strictly and compares one tensor's bytes with the source's.
fn check(
    out: &Path,
    source: &AnySource,
    name: &str,
    src_name: &str,
) -> Result<(String, String, usize, u64)> {
    let o = AnySource::open(out)?;
    let same = o.bytes(name)? == source.bytes(src_name)?;
    let file = out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    ensure!(
        same,
        CheckFailed(format!("{file}: `{name}` differs from the source"))
    );
    let bytes = std::fs::metadata(out)?.len();
    Ok((file, o.format().name().to_owned(), o.tensors().len(), bytes))
}
