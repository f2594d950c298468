//! MLX affine quantization against `mx.quantize` / `mx.dequantize` outputs (mlx 0.32.4, Linux
//! CPU) in `tests/data/fixtures/vectors/mlx`.

use safetensors::SafeTensors;
use wharf_core::DType;
use wharf_core::cast::bf16_bits_to_f32;
use wharf_quantizers::mlx::{self, MlxParams};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/fixtures/vectors/mlx/"
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

fn bf16s(st: &SafeTensors<'_>, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap();
    t.data()
        .chunks_exact(2)
        .map(|b| bf16_bits_to_f32(u16::from_le_bytes(b.try_into().unwrap())))
        .collect()
}

fn u32s(st: &SafeTensors<'_>, name: &str) -> Vec<u32> {
    let t = st.tensor(name).unwrap();
    t.data()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

const BITS: [u32; 6] = [2, 3, 4, 5, 6, 8];
const GROUPS: [usize; 3] = [32, 64, 128];

#[test]
fn f32_quantize_matches_every_bits_and_group() {
    let buf = read("affine_testvec_f32.safetensors");
    let st = SafeTensors::deserialize(&buf).unwrap();
    let input = f32s(&st, "input_f32");
    for bits in BITS {
        for group in GROUPS {
            let key = format!("b{bits}_g{group}");
            let q =
                mlx::quantize(&input, MlxParams::new(group, bits).unwrap(), DType::F32).unwrap();
            assert_eq!(
                q.weight,
                u32s(&st, &format!("{key}.weight")),
                "{key}.weight"
            );
            assert!(
                bits_eq(&q.scales, &f32s(&st, &format!("{key}.scales"))),
                "{key}.scales"
            );
            assert!(
                bits_eq(&q.biases, &f32s(&st, &format!("{key}.biases"))),
                "{key}.biases"
            );
        }
    }
}

#[test]
fn f32_dequantize_matches_every_bits_and_group() {
    let buf = read("affine_testvec_f32.safetensors");
    let st = SafeTensors::deserialize(&buf).unwrap();
    for bits in BITS {
        for group in GROUPS {
            let key = format!("b{bits}_g{group}");
            let back = mlx::dequantize(
                &u32s(&st, &format!("{key}.weight")),
                &f32s(&st, &format!("{key}.scales")),
                &f32s(&st, &format!("{key}.biases")),
                MlxParams::new(group, bits).unwrap(),
                DType::F32,
            )
            .unwrap();
            assert!(
                bits_eq(&back, &f32s(&st, &format!("{key}.dequant"))),
                "{key}.dequant"
            );
        }
    }
}

#[test]
fn bf16_quantize_matches() {
    let buf = read("affine_testvec_bf16.safetensors");
    let st = SafeTensors::deserialize(&buf).unwrap();
    let input = bf16s(&st, "input_bf16");
    for (bits, group) in [(4, 32), (4, 64), (8, 64)] {
        let key = format!("b{bits}_g{group}");
        let q = mlx::quantize(&input, MlxParams::new(group, bits).unwrap(), DType::BF16).unwrap();
        assert_eq!(
            q.weight,
            u32s(&st, &format!("{key}.weight")),
            "{key}.weight"
        );
        let scales = st.tensor(&format!("{key}.scales")).unwrap();
        assert_eq!(q.scales_bytes(), scales.data(), "{key}.scales");
        let biases = st.tensor(&format!("{key}.biases")).unwrap();
        assert_eq!(q.biases_bytes(), biases.data(), "{key}.biases");
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let buf = read("affine_testvec_f32.safetensors");
    let st = SafeTensors::deserialize(&buf).unwrap();
    let input = f32s(&st, "input_f32");
    let params = MlxParams::new(32, 3).unwrap();
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| mlx::quantize(&input, params, DType::BF16))
            .unwrap()
    };
    assert_eq!(run(1), run(4));
}
