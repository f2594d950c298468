//! ONNX initializers: `handmade_mlp.onnx` (inline `raw_data` and typed `float_data`) and the
//! torch dynamo export `llama_dynamo_noopt.onnx` (external data), compared with `models/llama`.
//!
//! Name mapping for the dynamo export: `torch.onnx.export(..., dynamo=True)` of
//! `LlamaForCausalLM` wrapped as `m` names every parameter `m.<HF name>`; `m.` is stripped to
//! compare. `m.model.rotary_emb.inv_freq` is a buffer with no HF checkpoint counterpart.

use std::path::{Path, PathBuf};

use wharf_converters::onnx::{Data, OnnxSource};
use wharf_converters::{AnySource, Format};
use wharf_core::{DType, TensorSource};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures")
}

#[test]
fn handmade_mlp_initializers_have_their_shapes_and_values() {
    let s = OnnxSource::open(data().join("reference/onnx/handmade_mlp.onnx")).unwrap();
    let want = [
        ("layer1.weight", DType::F32, vec![64, 128]),
        ("layer2.weight", DType::F32, vec![128, 64]),
        ("layer3.weight_f16", DType::F16, vec![64, 32]),
        ("layer1.bias", DType::F32, vec![128]),
        ("reshape_shape", DType::I64, vec![2]),
    ];
    assert_eq!(s.tensors().len(), want.len());
    for (name, dtype, shape) in want {
        let m = s.meta(name).unwrap();
        assert_eq!(
            (m.dtype, m.shape.dims()),
            (dtype, shape.as_slice()),
            "{name}"
        );
        assert_eq!(s.bytes(name).unwrap().len() as u64, m.nbytes().unwrap());
    }
    // layer2 is stored in the typed float_data field, the others as raw_data.
    let typed = s
        .initializers()
        .iter()
        .find(|i| i.meta.name == "layer2.weight");
    assert!(matches!(typed.unwrap().data, Data::Typed(4, _)));
    let w2: Vec<f32> = bytemuck::pod_collect_to_vec(&s.bytes("layer2.weight").unwrap());
    assert!(w2.iter().all(|v| v.is_finite()) && w2.iter().any(|&v| v != 0.0));
    let shape: Vec<i64> = bytemuck::pod_collect_to_vec(&s.bytes("reshape_shape").unwrap());
    assert_eq!(shape.len(), 2);
}

#[test]
fn llama_dynamo_initializers_equal_the_hf_checkpoint() {
    let path = data().join("reference/onnx/llama_dynamo_noopt.onnx");
    let onnx = AnySource::open(&path).unwrap();
    assert_eq!(onnx.format(), Format::Onnx);
    assert_eq!(onnx.paths().len(), 2, "model and its external data");
    let hf = AnySource::open(data().join("models/llama")).unwrap();
    let mut compared = 0;
    for m in onnx.tensors() {
        let hf_name = m.name.strip_prefix("m.").unwrap();
        if hf_name == "model.rotary_emb.inv_freq" {
            continue;
        }
        let h = hf.meta(hf_name).unwrap_or_else(|| panic!("{hf_name}"));
        assert_eq!((h.dtype, &h.shape), (m.dtype, &m.shape), "{hf_name}");
        assert_eq!(
            onnx.bytes(&m.name).unwrap(),
            hf.bytes(hf_name).unwrap(),
            "{hf_name}"
        );
        compared += 1;
    }
    assert_eq!(compared, hf.tensors().len());
}
