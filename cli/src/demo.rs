//! `wharf demo`: the main job on the embedded tiny model, end to end, with every output checked.
//!
//! The model is the fixture llama's config and tokenizer with weights drawn from a fixed-seed
//! generator (so the binary stays small). It is written as an HF folder, exported to every
//! target (GGUF for the Pis, MLX for Apple silicon, FP8 blocks for H800) and every bundle is
//! verified: files re-hashed, reference forward pass re-run against the golden.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, ensure};
use wharf_converters::safetensors::SafetensorsWriter;
use wharf_core::{DType, TensorMeta, TensorSink};
use wharf_targets::TARGETS;
use wharf_targets::export::{ExportOptions, export};
use wharf_targets::verify::verify;

use crate::CheckFailed;

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

pub fn run(args: Args) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = args
        .keep
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let model = root.join("tiny-llama");
    write_model(&model)?;
    let mut table = format!(
        "{:<14} {:<12} {:>5} {:>10} {:>6} {:>9}  verify\n",
        "target", "scheme", "files", "bytes", "top-1", "mean KL"
    );
    for profile in TARGETS {
        let out = root.join(format!("tiny-llama-{}", profile.name));
        let done = export(&model, &out, &ExportOptions::new(profile))?;
        let v = verify(&done.path)?;
        let m = v.metrics.as_ref();
        ensure!(
            v.ok(),
            CheckFailed(format!("{}: verify failed", out.display()))
        );
        let bytes: u64 = done.manifest.files.iter().map(|f| f.bytes).sum();
        table.push_str(&format!(
            "{:<14} {:<12} {:>5} {:>10} {:>6.3} {:>9.5}  ok\n",
            profile.name,
            done.manifest.recipe.scheme,
            done.manifest.files.len(),
            bytes,
            m.map_or(0.0, |m| m.top1),
            m.map_or(0.0, |m| m.mean_kl),
        ));
    }
    crate::emit(&table)
}
