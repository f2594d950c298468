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

/// SHA-256 (FIPS 180-4) of `data`, lowercase hex; small enough to keep the test dependency-free.
fn sha256_hex(data: &[u8]) -> String {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        compress(&mut h, block);
    }
    h.iter().map(|w| format!("{w:08x}")).collect()
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

fn compress(h: &mut [u32; 8], block: &[u8]) {
    let mut w = [0u32; 64];
    for (i, c) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes(c.try_into().unwrap());
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = *h;
    for i in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = hh
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(K[i])
            .wrapping_add(w[i]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
    }
    for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
        *x = x.wrapping_add(y);
    }
}

#[test]
fn sha256_known_answer() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
