//! Preflight on the fixtures: the tensor-parallel report for DeepSeek-V3's FP8 shapes, memory
//! fit on Pi boards, and repack warnings.

use std::path::PathBuf;

use wharf_converters::AnySource;
use wharf_core::{DType, Shape, TensorMeta, TensorSource};
use wharf_targets::preflight::{self, Request, kv_cache_bytes, parse_memory};

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures")
        .join(p)
}

fn open(p: &str) -> (AnySource, Vec<TensorMeta>) {
    let src = AnySource::open(fixture(p)).unwrap();
    let metas = src.tensors().to_vec();
    (src, metas)
}

#[test]
fn deepseek_v3_fp8_loads_at_tp_1_and_2_only() {
    let (src, metas) = open("models/deepseek_v3_fp8");
    let spec = src.spec().unwrap();
    let h800 = wharf_targets::by_name("h800").unwrap();
    let report = preflight::check(&Request {
        profile: h800,
        spec,
        tensors: &metas,
        ctx: 4096,
        memory: None,
    });
    let ok: Vec<u64> = report.tp.iter().filter(|r| r.ok).map(|r| r.tp).collect();
    assert_eq!(ok, [1, 2], "{:#?}", report.tp);
    let tp4 = &report.tp[2];
    // o_proj's input (4 heads x 64) splits into 64 per rank at tp 4.
    assert!(
        tp4.problems
            .iter()
            .any(|p| p.contains("self_attn.o_proj") && p.contains("per rank 64")),
        "{:#?}",
        tp4.problems
    );
    let tp8 = &report.tp[3];
    assert!(tp8.problems.iter().any(|p| p.contains("attention heads")));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[test]
fn a_model_too_big_for_the_board_is_refused() {
    let (src, _) = open("models/llama");
    let spec = src.spec().unwrap();
    let pi4 = wharf_targets::by_name("pi4").unwrap();
    // A pretend 3 GiB weight on a 2 GiB board.
    let big = [TensorMeta::new(
        "token_embd.weight",
        DType::F32,
        Shape::new(vec![3 << 28]),
    )];
    let req = Request {
        profile: pi4,
        spec,
        tensors: &big,
        ctx: 4096,
        memory: parse_memory("2GB"),
    };
    let report = preflight::check(&req);
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(report.errors[0].contains("pi4"));
    let fits: Vec<u64> = report
        .boards
        .iter()
        .filter(|b| b.fits)
        .map(|b| b.gib)
        .collect();
    assert_eq!(fits, [4, 8]);
}

#[test]
fn kv_cache_sizes() {
    let (src, _) = open("models/llama");
    let spec = src.spec().unwrap();
    // 2 layers x 4 KV heads x 32 dims x (K and V) x 2 bytes x 4096 tokens.
    assert_eq!(kv_cache_bytes(spec, 4096), 2 * 4 * 32 * 2 * 2 * 4096);
    let (src, _) = open("models/deepseek_v3");
    let spec = src.spec().unwrap();
    // MLA: (kv_lora_rank 128 + rope 64) x 3 layers x 2 bytes x 4096.
    assert_eq!(kv_cache_bytes(spec, 4096), (128 + 64) * 3 * 2 * 4096);
}

#[test]
fn pi5_warns_about_rows_that_will_not_repack() {
    let (src, _) = open("models/llama");
    let spec = src.spec().unwrap();
    let pi5 = wharf_targets::by_name("pi5").unwrap();
    let tensors = [
        TensorMeta::new("a.weight", DType::Q4_0, Shape::new(vec![6, 256])),
        TensorMeta::new("b.weight", DType::Q4K, Shape::new(vec![12, 256])),
        TensorMeta::new("c.weight", DType::Q4K, Shape::new(vec![16, 256])),
    ];
    let report = preflight::check(&Request {
        profile: pi5,
        spec,
        tensors: &tensors,
        ctx: 512,
        memory: None,
    });
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(report.warnings[0].starts_with("a.weight"));
    assert!(report.warnings[1].starts_with("b.weight"));
}

#[test]
fn memory_sizes_parse() {
    assert_eq!(parse_memory("8GB"), Some(8 << 30));
    assert_eq!(parse_memory("512MiB"), Some(512 << 20));
    assert_eq!(parse_memory("1.5g"), Some(3 << 29));
    assert_eq!(parse_memory("12 parsecs"), None);
}
