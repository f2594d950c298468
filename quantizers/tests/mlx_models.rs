//! MLX affine quantization of the `llama` fixture against the per-tensor sha256 digests of
//! `mlx_lm.convert -q --q-group-size 64 --q-bits 4` (mlx 0.32.4, mlx-lm 0.32.2) in
//! `tests/data/fixtures/reference/mlx/llama_4bit_g64/digests.json`.

use safetensors::SafeTensors;
use serde_json::Value;
use wharf_core::DType;
use wharf_quantizers::mlx::{self, MlxParams};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/fixtures/");

#[test]
fn llama_4bit_g64_matches_mlx_lm_convert() {
    let digests: Value = serde_json::from_slice(
        &std::fs::read(format!(
            "{FIXTURES}reference/mlx/llama_4bit_g64/digests.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let table = digests["model.safetensors"].as_object().unwrap();
    let buf = std::fs::read(format!("{FIXTURES}models/llama/model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&buf).unwrap();
    let mut checked = 0;
    for (name, entry) in table {
        let Some(path) = name.strip_suffix(".weight") else {
            continue;
        };
        if entry["dtype"] != "U32" {
            continue;
        }
        let src: Vec<f32> = st
            .tensor(name)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let q = mlx::quantize(&src, MlxParams::DEFAULT, DType::F32).unwrap();
        let weight: Vec<u8> = q.weight.iter().flat_map(|w| w.to_le_bytes()).collect();
        let digest = |key: &str| table[key]["sha256"].as_str().unwrap().to_owned();
        assert_eq!(sha256_hex(&weight), digest(name), "{name}");
        assert_eq!(
            sha256_hex(&q.scales_bytes()),
            digest(&format!("{path}.scales")),
            "{path}"
        );
        assert_eq!(
            sha256_hex(&q.biases_bytes()),
            digest(&format!("{path}.biases")),
            "{path}"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} quantized tensors");
}

/// SHA-256 of `data`, lowercase hex.
fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
