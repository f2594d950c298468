//! Every plan made a row block at a time gives the same bytes as made whole: FP8 (block,
//! channel, tensor), INT4 (symmetric, asymmetric), MLX (scales kept or computed again) and
//! float casts, over stored F32 and BF16 sources and FP8 weights the view computes, with
//! DeepSeek's experts stacked from many sources and `kv_b_proj` split.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wharf_core::{TensorMeta, TensorSink, TensorSource};
use wharf_quantizers::mlx::MlxParams;

use super::storage::QuantizedView;
use super::{Fp8Scheme, plan_fp8, plan_int4, plan_mlx};
use crate::pipeline::{Encoder, Planned, run_in_blocks};
use crate::safetensors::SafetensorsSource;

/// Each tensor's bytes, joined across writes.
#[derive(Default)]
struct Bytes(Vec<(String, Vec<u8>)>);

impl TensorSink for Bytes {
    fn write(&mut self, name: &str, chunk: &[u8]) -> wharf_core::Result<()> {
        match self.0.last_mut() {
            Some((n, b)) if n == name => b.extend_from_slice(chunk),
            _ => self.0.push((name.to_owned(), chunk.to_vec())),
        }
        Ok(())
    }
    fn finish(self: Box<Self>) -> wharf_core::Result<()> {
        Ok(())
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures/models")
        .join(name)
}

fn config(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

/// The plan's bytes at the default block size and at blocks of 300 and of one row.
fn same_in_blocks(label: &str, src: &dyn TensorSource, plan: &[Planned], enc: &dyn Encoder) {
    let run = |values: usize| {
        let mut sink = Bytes::default();
        run_in_blocks(src, plan, &mut sink, &mut |_| {}, Some(enc), values).unwrap();
        sink.0
    };
    let whole = run(usize::MAX / 2);
    let metas: Vec<&TensorMeta> = plan.iter().map(|p| &p.meta).collect();
    assert_eq!(whole.len(), metas.len(), "{label}");
    for values in [300, 1] {
        let cut = run(values);
        for ((name, a), (_, b)) in whole.iter().zip(&cut) {
            assert!(
                a == b,
                "{label}: `{name}` differs in blocks of {values} values"
            );
        }
    }
}

fn models() -> Vec<(&'static str, SafetensorsSource)> {
    ["deepseek_v3", "deepseek_v3_fp8", "mistral_bf16", "qwen2"]
        .into_iter()
        .map(|m| (m, SafetensorsSource::open_dir(fixture(m)).unwrap()))
        .collect()
}

#[test]
fn fp8_plans_give_the_same_bytes_in_blocks() {
    for (model, src) in models() {
        let view = QuantizedView::new(&src, Some(&config(&fixture(model)))).unwrap();
        for scheme in [
            Fp8Scheme::DeepseekBlock,
            Fp8Scheme::CtBlock,
            Fp8Scheme::CtChannel,
            Fp8Scheme::CtTensor,
        ] {
            let plan = plan_fp8(&view, &config(&fixture(model)), scheme).unwrap();
            same_in_blocks(&format!("{model} {scheme:?}"), &view, &plan.tensors, &plan);
        }
    }
}

#[test]
fn int4_plans_give_the_same_bytes_in_blocks() {
    for (model, src) in models() {
        let view = QuantizedView::new(&src, Some(&config(&fixture(model)))).unwrap();
        for symmetric in [true, false] {
            let plan = plan_int4(&view, &config(&fixture(model)), symmetric).unwrap();
            let label = format!("{model} int4 symmetric {symmetric}");
            same_in_blocks(&label, &view, &plan.tensors, &plan);
        }
    }
}

#[test]
fn mlx_plans_give_the_same_bytes_in_blocks_with_scales_kept_or_not() {
    for (model, src) in models() {
        let view = QuantizedView::new(&src, Some(&config(&fixture(model)))).unwrap();
        for keep in [usize::MAX, 0] {
            let params = MlxParams::new(64, 4).unwrap();
            let mut plan = plan_mlx(&view, &config(&fixture(model)), params).unwrap();
            plan.keep_scales_at_most(keep);
            let stacked = plan.tensors.iter().filter(|p| p.from.len() > 1).count();
            assert!(
                !model.starts_with("deepseek") || stacked > 0,
                "{model}: no stack"
            );
            same_in_blocks(
                &format!("{model} mlx4 keep {keep}"),
                &view,
                &plan.tensors,
                &plan,
            );
        }
    }
}
