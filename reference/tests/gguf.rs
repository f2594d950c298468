//! GGUF inputs: wharf's own F32 conversion of every fixture model must compute what the HF folder
//! computes (so Q/K un-permutation, the `kv_b` reassembly, stacked experts, `rope_freqs` and the
//! metadata-built description are right), and llama.cpp-quantized files must compute what the
//! dense path computes on their own dequantized weights.

// The measured errors are printed for `--nocapture` runs and the report.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};

use wharf_converters::AnySource;
use wharf_converters::gguf::{GgufFile, GgufWriter};
use wharf_converters::hf::{GgufOptions, HfToGguf, OutType};
use wharf_core::{DType, TensorMeta, TensorSink, TensorSource};
use wharf_reference::kernels::{dot, matmul};
use wharf_reference::{Model, npy};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures")
}

fn ids() -> Vec<u32> {
    let bytes = std::fs::read(data().join("golden/llama/input_ids.npy")).unwrap();
    npy::decode(&bytes)
        .unwrap()
        .data
        .iter()
        .map(|&x| x as u32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Converts `models/<model>` to an F32 GGUF with wharf's converter.
fn convert_f32(model: &str, out: &Path) {
    let dir = data().join("models").join(model);
    let src = AnySource::open(&dir).unwrap();
    let opts = GgufOptions {
        out: OutType::F32,
        pre: None,
    };
    HfToGguf::new(&src, &opts)
        .unwrap()
        .write(out, None, &mut |_| {})
        .unwrap();
}

/// Every matrix of `model` gives, for one token, the bits of decoding each row to f32 and
/// taking `kernels::dot`, whether `matmul` read the stored rows in place (`Weights::stored_rows`)
/// or not; returns how many weights were read in place.
fn fused_equals_decoded(model: &Model) -> usize {
    let w = model.weights();
    let spec = model.spec();
    let mut names = vec!["lm_head.weight".to_owned()];
    for l in 0..spec.num_layers {
        let p = format!("model.layers.{l}");
        for t in [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "q_a_proj",
            "q_b_proj",
            "kv_b_proj",
        ] {
            names.push(format!("{p}.self_attn.{t}.weight"));
        }
        names.push(format!("{p}.self_attn.kv_a_proj_with_mqa.weight"));
        for t in ["gate_proj", "up_proj", "down_proj"] {
            names.push(format!("{p}.mlp.{t}.weight"));
            names.push(format!("{p}.mlp.shared_experts.{t}.weight"));
            let experts = spec.moe.as_ref().map_or(0, |m| m.n_routed_experts);
            for e in 0..experts {
                names.push(format!("{p}.mlp.experts.{e}.{t}.weight"));
            }
        }
    }
    let mut fused = 0;
    for name in &names {
        let Some([rows, cols]) = w.shape(name) else {
            continue;
        };
        let x: Vec<f32> = (0..cols)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 700.0)
            .collect();
        let mut dense = vec![0f32; rows * cols];
        w.read_rows(name, 0, &mut dense).unwrap();
        let want: Vec<u32> = dense
            .chunks_exact(cols)
            .map(|row| dot(row, &x).to_bits())
            .collect();
        let got: Vec<u32> = matmul(w, name, &x, 1)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(got, want, "{name}");
        fused += usize::from(w.stored_rows(name).is_some());
    }
    fused
}

fn converted_matches_hf(model: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.gguf");
    convert_f32(model, &path);
    let hf = Model::open(&data().join("models").join(model)).unwrap();
    let gguf = Model::open(&path).unwrap();
    assert!(fused_equals_decoded(&gguf) > 0, "{model}");
    let (a, b) = (hf.logits(&ids()).unwrap(), gguf.logits(&ids()).unwrap());
    let d = max_diff(&a.data, &b.data);
    eprintln!("{model}: HF vs wharf F32 GGUF max abs diff {d:.3e}");
    assert!(d <= 1e-4, "{model}: {d}");
    assert_eq!(a.argmax(), b.argmax());
    assert_eq!(
        hf.generate(&ids(), 8).unwrap(),
        gguf.generate(&ids(), 8).unwrap()
    );
}

#[test]
fn llama_gguf_f32() {
    converted_matches_hf("llama");
}

#[test]
fn llama_tied_gguf_f32_rope_freqs() {
    converted_matches_hf("llama_tied");
}

#[test]
fn qwen2_gguf_f32() {
    converted_matches_hf("qwen2");
}

#[test]
fn mistral_gguf_f32() {
    converted_matches_hf("mistral_bf16");
}

#[test]
fn deepseek_v3_gguf_f32() {
    converted_matches_hf("deepseek_v3");
}

/// Rewrites a GGUF with every tensor dequantized to F32 (same names, layout and metadata).
fn dequantized_copy(src: &Path, out: &Path) {
    let g = GgufFile::open(src).unwrap();
    let metas: Vec<TensorMeta> = g
        .tensors()
        .iter()
        .map(|m| TensorMeta::new(m.name.clone(), DType::F32, m.shape.clone()))
        .collect();
    let kvs: Vec<_> = g
        .kvs()
        .iter()
        .filter(|(k, _)| k != "general.alignment")
        .cloned()
        .collect();
    let mut w = GgufWriter::create(out, &kvs, &metas, None).unwrap();
    for m in g.tensors() {
        let mut vals = vec![0f32; m.numel().unwrap() as usize];
        wharf_quantizers::ggml::dequantize(m.dtype, &g.bytes(&m.name).unwrap(), &mut vals).unwrap();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.write(&m.name, &bytes).unwrap();
    }
    w.commit().unwrap();
}

fn golden_logits(model: &str) -> Vec<f32> {
    let bytes = std::fs::read(data().join("golden").join(model).join("logits_all.npy")).unwrap();
    npy::decode(&bytes)
        .unwrap()
        .data
        .iter()
        .map(|&x| x as f32)
        .collect()
}

/// Root-mean-square of `a - b` relative to the RMS of `b`.
fn rel_rms(a: &[f32], b: &[f32]) -> f32 {
    let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f32 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

/// A llama.cpp-quantized file runs and equals the dense path on its own dequantized weights;
/// its distance to the unquantized golden (relative RMS; random weights quantize poorly, so
/// max abs errors reach 0.07 at Q8_0 and 1.0 at Q4_0) stays below `tol`.
fn llamacpp_quant(file: &str, golden: &str, tol: f32) {
    let path = data().join("reference/gguf").join(file);
    let tmp = tempfile::tempdir().unwrap();
    let deq = tmp.path().join("deq.gguf");
    dequantized_copy(&path, &deq);
    let model = Model::open(&path).unwrap();
    assert!(fused_equals_decoded(&model) > 0, "{file}");
    let q = model.logits(&ids()).unwrap();
    let d = Model::open(&deq).unwrap().logits(&ids()).unwrap();
    let same = max_diff(&q.data, &d.data);
    let vs_golden = rel_rms(&q.data, &golden_logits(golden));
    eprintln!(
        "{file}: vs dequantized F32 {same:.3e}, relative RMS vs unquantized golden {vs_golden:.3e}"
    );
    assert!(same <= 1e-5, "{file}: {same}");
    assert!(vs_golden <= tol, "{file}: {vs_golden}");
}

#[test]
fn llamacpp_q8_0() {
    llamacpp_quant("llama-llamacpp-Q8_0.gguf", "llama", 0.03);
}

#[test]
fn llamacpp_q4_0() {
    llamacpp_quant("llama-llamacpp-Q4_0.gguf", "llama", 0.4);
}

#[test]
fn llamacpp_q4_k_m() {
    llamacpp_quant("llama-llamacpp-Q4_K_M.gguf", "llama", 0.4);
}

#[test]
fn llamacpp_tied_q4_k_m() {
    llamacpp_quant("llama_tied-llamacpp-Q4_K_M.gguf", "llama_tied", 0.4);
}
