//! Byte identity with libggml: `ggml_quantize_chunk` outputs recorded by the shared fixture
//! (`tests/data/fixtures/vectors/gguf`) and by `xtask/scripts/gen_ggml_vectors.py`
//! (`tests/data/vectors/ggml`, with and without an importance matrix).
//!
//! `cargo xtask interop` also draws fresh random vectors from libggml
//! (`gen_ggml_vectors.py --fuzz`) and passes them in `WHARF_GGML_VECTORS` (colon-separated);
//! without it, `extra_vectors_match_libggml` re-checks the committed file.

use safetensors::SafeTensors;
use wharf_core::DType;
use wharf_quantizers::ggml::{dequantize, quantize};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/fixtures/vectors/gguf/ggml_quant_testvec.safetensors"
);
const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/vectors/ggml/ggml_quants.safetensors"
);

const TYPES: [&str; 10] = [
    "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
];

fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn bytes<'a>(st: &'a SafeTensors, name: &str) -> (&'a [u8], usize) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    (t.data(), t.shape()[0])
}

fn encode(dtype: DType, x: &[f32], rows: usize, imatrix: Option<&[f32]>, len: usize) -> Vec<u8> {
    let mut q = vec![0u8; len];
    quantize(dtype, x, x.len() / rows, imatrix, &mut q).unwrap();
    q
}

/// Index and bytes of the first differing block, for a readable failure.
fn first_diff(got: &[u8], want: &[u8], dtype: DType) -> String {
    let bb = dtype.layout().bytes as usize;
    match got
        .chunks(bb)
        .zip(want.chunks(bb))
        .position(|(a, b)| a != b)
    {
        None => "identical".into(),
        Some(i) => format!(
            "block {i}:\n got  {:?}\n want {:?}",
            &got[i * bb..(i + 1) * bb],
            &want[i * bb..(i + 1) * bb]
        ),
    }
}

#[test]
fn fixture_bytes_match_libggml() {
    let buf = std::fs::read(FIXTURE).unwrap();
    let st = SafeTensors::deserialize(&buf).unwrap();
    let x = f32s(&st, "input_f32");
    for name in TYPES
        .iter()
        .chain(&["MXFP4", "TQ1_0", "TQ2_0", "F16", "BF16"])
    {
        let dtype: DType = name.parse().unwrap();
        let (want, rows) = bytes(&st, &format!("{name}.bytes"));
        let got = encode(dtype, &x, rows, None, want.len());
        assert!(got == want, "{name}: {}", first_diff(&got, want, dtype));
    }
}

#[test]
fn fixture_dequantization_matches_gguf_py() {
    let buf = std::fs::read(FIXTURE).unwrap();
    let st = SafeTensors::deserialize(&buf).unwrap();
    let others = ["MXFP4", "TQ1_0", "TQ2_0", "IQ4_NL", "IQ4_XS", "F16", "BF16"];
    for name in TYPES.iter().chain(&others) {
        let dtype: DType = name.parse().unwrap();
        let (q, _) = bytes(&st, &format!("{name}.bytes"));
        let want = f32s(&st, &format!("{name}.dequant_gguf_py"));
        let mut got = vec![0f32; want.len()];
        dequantize(dtype, q, &mut got).unwrap();
        let bad = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(bad.is_none(), "{name}: element {bad:?}");
    }
}

/// Checks every case of a `gen_ggml_vectors.py` file; returns how many tensors were compared.
fn check_vector_file(path: &str) -> usize {
    let buf = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let st = SafeTensors::deserialize(&buf).unwrap();
    let mut cases: Vec<String> = st
        .names()
        .iter()
        .filter_map(|n| n.strip_suffix(".input").map(str::to_owned))
        .collect();
    cases.sort();
    let mut checked = 0;
    for case in &cases {
        let x = f32s(&st, &format!("{case}.input"));
        let im = f32s(&st, &format!("{case}.imatrix"));
        for name in TYPES.iter().chain(&["MXFP4", "TQ1_0", "TQ2_0"]) {
            let dtype: DType = name.parse().unwrap();
            for (suffix, imatrix) in [("", None), (".imatrix", Some(&im[..]))] {
                let (want, rows) = bytes(&st, &format!("{case}.{name}{suffix}"));
                let got = encode(dtype, &x, rows, imatrix, want.len());
                let what = format!("{case}.{name}{suffix}");
                assert!(got == want, "{what}: {}", first_diff(&got, want, dtype));
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn generated_vectors_match_libggml() {
    assert_eq!(check_vector_file(VECTORS), 3 * 13 * 2);
}

#[test]
fn extra_vectors_match_libggml() {
    let paths = std::env::var("WHARF_GGML_VECTORS").unwrap_or_else(|_| VECTORS.to_owned());
    for p in paths.split(':').filter(|p| !p.is_empty()) {
        assert!(check_vector_file(p) > 0, "{p}");
    }
}
