//! FP8 codecs against the reference vectors in `tests/data/fixtures/vectors/fp8`
//! (ml_dtypes 0.6.0 and torch 2.15.0, see the `.json` siblings).

use safetensors::SafeTensors;
use wharf_core::DType;
use wharf_quantizers::fp8::{self, Fp8Format, Fp8Options};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/fixtures/vectors/fp8/"
);

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}{name}")).unwrap()
}

fn f32s(st: &SafeTensors<'_>, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap();
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn bytes(st: &SafeTensors<'_>, name: &str) -> Vec<u8> {
    st.tensor(name).unwrap().data().to_vec()
}

fn same_f32(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

#[test]
fn decode_tables_match_ml_dtypes() {
    let buf = read("fp8_decode_tables.safetensors");
    let st = SafeTensors::deserialize(&buf).unwrap();
    for (fmt, name) in [
        (Fp8Format::E4M3, "e4m3fn_decode_f32"),
        (Fp8Format::E5M2, "e5m2_decode_f32"),
    ] {
        let want = f32s(&st, name);
        assert_eq!(want.len(), 256);
        for (code, &w) in want.iter().enumerate() {
            let got = fp8::decode(fmt, code as u8);
            assert!(same_f32(got, w), "{name}[{code:#04x}]: {got} != {w}");
        }
    }
}

#[test]
fn edge_cases_match_torch_clamp_then_cast() {
    let buf = read("fp8_edge_cases.safetensors");
    let st = SafeTensors::deserialize(&buf).unwrap();
    let input = f32s(&st, "input_f32");
    let cases = [
        (Fp8Format::E4M3, "e4m3fn_saturating"),
        (Fp8Format::E4M3, "e4m3fn_torch"),
        (Fp8Format::E5M2, "e5m2_saturating"),
    ];
    for (fmt, name) in cases {
        let want = bytes(&st, name);
        for (&x, &w) in input.iter().zip(&want) {
            assert_eq!(fmt.encode(x), w, "{name}: {x:e} ({:#010x})", x.to_bits());
        }
    }
}

#[test]
fn edge_cases_in_range_match_ml_dtypes() {
    let buf = read("fp8_edge_cases.safetensors");
    let st = SafeTensors::deserialize(&buf).unwrap();
    let input = f32s(&st, "input_f32");
    for (fmt, name) in [
        (Fp8Format::E4M3, "e4m3fn_ml_dtypes"),
        (Fp8Format::E5M2, "e5m2_ml_dtypes"),
    ] {
        let want = bytes(&st, name);
        for (&x, &w) in input.iter().zip(&want) {
            // ml_dtypes does not saturate: out of range gives NaN (E4M3FN) or inf (E5M2).
            let decoded = fmt.decode(w);
            if decoded.is_finite() {
                assert_eq!(fmt.encode(x), w, "{name}: {x:e}");
            }
        }
    }
}

fn testvec() -> Vec<u8> {
    read("fp8_quant_testvec.safetensors")
}

#[test]
fn block128_matches_deepseek_layout() {
    let buf = testvec();
    let st = SafeTensors::deserialize(&buf).unwrap();
    let input = f32s(&st, "input");
    let (q, s) = fp8::quantize_blocks(Fp8Options::DEEPSEEK, &input, 300, 200, (128, 128)).unwrap();
    assert_eq!(s, f32s(&st, "block128.weight_scale_inv"));
    assert_eq!(q, bytes(&st, "block128.weight"));
    // transformers' multiply form gives the same bytes (its scales differ by an ulp).
    assert_eq!(q, bytes(&st, "block128_transformers_mul.weight"));
    let back = fp8::dequantize_blocks(Fp8Format::E4M3, &q, &s, 300, 200, (128, 128)).unwrap();
    let want = f32s(&st, "block128.dequant");
    assert!(
        back.iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}

#[test]
fn per_tensor_matches() {
    let buf = testvec();
    let st = SafeTensors::deserialize(&buf).unwrap();
    let input = f32s(&st, "input");
    for (fmt, prefix) in [
        (Fp8Format::E4M3, "per_tensor_e4m3"),
        (Fp8Format::E5M2, "per_tensor_e5m2"),
    ] {
        let opts = Fp8Options::compressed_tensors(fmt, DType::F32);
        let (q, s) = fp8::quantize_per_tensor(opts, &input).unwrap();
        assert_eq!(
            vec![s],
            f32s(&st, &format!("{prefix}.weight_scale")),
            "{prefix}"
        );
        assert_eq!(q, bytes(&st, &format!("{prefix}.weight")), "{prefix}");
    }
}

#[test]
fn per_channel_matches() {
    let buf = testvec();
    let st = SafeTensors::deserialize(&buf).unwrap();
    let input = f32s(&st, "input");
    for (fmt, prefix) in [
        (Fp8Format::E4M3, "per_channel_e4m3"),
        (Fp8Format::E5M2, "per_channel_e5m2"),
    ] {
        let opts = Fp8Options::compressed_tensors(fmt, DType::F32);
        let (q, s) = fp8::quantize_per_channel(opts, &input, 300, 200).unwrap();
        assert_eq!(s, f32s(&st, &format!("{prefix}.weight_scale")), "{prefix}");
        assert_eq!(q, bytes(&st, &format!("{prefix}.weight")), "{prefix}");
    }
}

#[test]
fn block_results_do_not_depend_on_thread_count() {
    let buf = testvec();
    let st = SafeTensors::deserialize(&buf).unwrap();
    let input = f32s(&st, "input");
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| fp8::quantize_blocks(Fp8Options::DEEPSEEK, &input, 300, 200, (32, 64)))
            .unwrap()
    };
    assert_eq!(run(1), run(3));
}
