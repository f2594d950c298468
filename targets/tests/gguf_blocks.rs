//! The llama-quantize pass made a row block at a time writes the same file as made whole: with
//! an importance matrix whose slice changes at every expert, from an HF folder (each expert its
//! own source) and from a quantized GGUF requantized (blocks cross the experts of one stored
//! stack).

use std::path::{Path, PathBuf};

use wharf_converters::AnySource;
use wharf_converters::imatrix::Imatrix;
use wharf_core::TensorSource;
use wharf_quantizers::ggml::mix::{Mix, MixOptions};
use wharf_targets::gguf::{self, Extras};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures")
        .join(p)
}

/// Importances for every matrix of the planned file, different for every expert.
fn importances(src: &AnySource, mix: Mix) -> Imatrix {
    let requantize = Extras {
        allow_requantize: true,
        ..Extras::default()
    };
    let job = gguf::plan_with(src, mix, &MixOptions::default(), requantize).unwrap();
    let entries = job
        .metas()
        .into_iter()
        .filter(|m| m.shape.rank() >= 2)
        .map(|m| {
            let d = m.shape.dims();
            let n = (d[d.len() - 1] * if d.len() == 3 { d[0] } else { 1 }) as usize;
            let v = (0..n)
                .map(|i| ((i * 37) % 101) as f32 * 0.25 + 0.01)
                .collect();
            (m.name, v)
        })
        .collect();
    Imatrix {
        entries,
        datasets: vec!["blocks.txt".into()],
        chunk_count: 3,
        legacy: false,
    }
}

fn file(src: &AnySource, mix: Mix, m: &Imatrix, values: usize, out: &Path) -> Vec<u8> {
    let extras = Extras {
        imatrix: Some((m, "blocks.gguf")),
        allow_requantize: true,
    };
    let job = gguf::plan_with(src, mix, &MixOptions::default(), extras).unwrap();
    gguf::write(src, &job.in_blocks_of(values), out, None, &mut |_| {}).unwrap();
    std::fs::read(out).unwrap()
}

fn same_in_blocks(src: &AnySource, mix: Mix) {
    let dir = tempfile::tempdir().unwrap();
    let m = importances(src, mix);
    let whole = file(src, mix, &m, usize::MAX / 2, &dir.path().join("whole.gguf"));
    for values in [1000, 1] {
        let cut = file(
            src,
            mix,
            &m,
            values,
            &dir.path().join(format!("{values}.gguf")),
        );
        assert!(cut == whole, "{mix:?}: blocks of {values} values differ");
    }
}

#[test]
fn hf_experts_quantize_the_same_in_blocks() {
    let src = AnySource::open(fixture("models/deepseek_v3")).unwrap();
    same_in_blocks(&src, Mix::Q4_K_M);
}

#[test]
fn a_requantized_gguf_stack_quantizes_the_same_in_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let q8 = dir.path().join("q8.gguf");
    let hf = AnySource::open(fixture("models/deepseek_v3")).unwrap();
    let job = gguf::plan(&hf, Mix::Q8_0, &MixOptions::default()).unwrap();
    gguf::write(&hf, &job, &q8, None, &mut |_| {}).unwrap();
    let src = AnySource::open(&q8).unwrap();
    assert!(
        src.tensors().iter().any(|m| m.shape.rank() == 3),
        "no stacked experts"
    );
    same_in_blocks(&src, Mix::Q4_K_M);
}
