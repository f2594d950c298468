//! FP8 quantizers against real checkpoints in `tests/data/fixtures/models`: each FP8 model was
//! made from its f32 sibling by the reference tool (compressed-tensors 0.20.0, transformers'
//! FP8 quantizer, DeepSeek's layout), so quantizing the f32 weights must give the same bytes.

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};
use wharf_core::DType;
use wharf_quantizers::fp8::{self, Fp8Format, Fp8Options};

const MODELS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/fixtures/models/"
);

/// A tensor: dtype, shape, raw bytes.
type Tensor = (Dtype, Vec<usize>, Vec<u8>);

/// Every tensor of every `.safetensors` file in a model folder.
fn load(model: &str) -> BTreeMap<String, Tensor> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(format!("{MODELS}{model}")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let buf = std::fs::read(&path).unwrap();
            let st = SafeTensors::deserialize(&buf).unwrap();
            for (name, t) in st.tensors() {
                out.insert(name, (t.dtype(), t.shape().to_vec(), t.data().to_vec()));
            }
        }
    }
    out
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// How the quantized model stores each FP8 weight's scale.
#[derive(Clone, Copy)]
enum Layout {
    Block {
        opts: Fp8Options,
        suffix: &'static str,
    },
    Channel,
}

/// Re-quantizes every F8_E4M3 weight of `quantized` from `source` and compares bytes and scales.
fn check(source: &str, quantized: &str, layout: Layout) {
    let src = load(source);
    let q = load(quantized);
    let mut checked = 0;
    for (name, (dtype, shape, data)) in &q {
        if *dtype != Dtype::F8_E4M3 {
            continue;
        }
        let (_, _, raw) = &src[name];
        let (rows, cols) = (shape[0], shape[1]);
        let (codes, scales, suffix) = match layout {
            Layout::Block { opts, suffix } => {
                let (c, s) =
                    fp8::quantize_blocks(opts, &f32s(raw), rows, cols, (128, 128)).unwrap();
                (c, s, suffix)
            }
            Layout::Channel => {
                let opts = Fp8Options::compressed_tensors(Fp8Format::E4M3, DType::F32);
                let (c, s) = fp8::quantize_per_channel(opts, &f32s(raw), rows, cols).unwrap();
                (c, s, "_scale")
            }
        };
        assert_eq!(&codes, data, "{quantized}: {name}");
        let (_, _, want) = &q[&format!("{name}{suffix}")];
        assert_eq!(scales, f32s(want), "{quantized}: {name}{suffix}");
        checked += 1;
    }
    assert!(checked > 0, "{quantized} has no FP8 weights");
}

#[test]
fn deepseek_v3_fp8_from_f32() {
    let opts = Fp8Options::DEEPSEEK;
    check(
        "deepseek_v3",
        "deepseek_v3_fp8",
        Layout::Block {
            opts,
            suffix: "_scale_inv",
        },
    );
}

#[test]
fn transformers_fp8_block_from_f32() {
    let opts = Fp8Options::DEEPSEEK;
    check(
        "llama",
        "llama_fp8_block",
        Layout::Block {
            opts,
            suffix: "_scale_inv",
        },
    );
}

#[test]
fn compressed_tensors_fp8_block_from_f32() {
    let opts = Fp8Options::compressed_tensors(Fp8Format::E4M3, DType::F32);
    check(
        "llama",
        "llama_ct_fp8_block",
        Layout::Block {
            opts,
            suffix: "_scale",
        },
    );
}

#[test]
fn compressed_tensors_fp8_dynamic_from_f32() {
    check("llama", "llama_ct_fp8_dynamic", Layout::Channel);
}
