//! Nanoseconds per weight of the in-place row kernels (one thread, rows of 7168, 56 MiB of codes
//! so the rows come from memory as in generation): Q8_0 and DeepSeek's block FP8, which read
//! one byte a weight, and BF16 (two). `cargo run --release -p wharf-reference --example kernels`.

// An example program reports on stdout.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use wharf_core::DType;
use wharf_reference::qdot;

const COLS: usize = 7168;
const ROWS: usize = 8192;

fn main() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let x: Vec<f32> = (0..COLS)
        .map(|_| (next() >> 40) as f32 * 1e-7 - 0.8)
        .collect();
    let codes: Vec<u8> = (0..ROWS * COLS).map(|_| next() as u8 & 0xf7).collect();
    let scales: Vec<f32> = (0..COLS / 128).map(|i| 1e-3 * (i + 1) as f32).collect();
    let vals: Vec<f32> = (0..ROWS * COLS)
        .map(|_| (next() >> 40) as f32 * 1e-7 - 0.8)
        .collect();
    let q8_row = DType::Q8_0.row_bytes(COLS as u64).unwrap() as usize;
    let mut q8 = vec![0u8; ROWS * q8_row];
    wharf_quantizers::ggml::quantize(DType::Q8_0, &vals, COLS, None, &mut q8).unwrap();
    let q8_kernel = qdot::kernel(DType::Q8_0).unwrap();
    let time = |name: &str, f: &dyn Fn(usize) -> f32| {
        let mut best = f64::MAX;
        let mut sink = 0f32;
        for _ in 0..5 {
            let t = Instant::now();
            for r in 0..ROWS {
                sink += f(r);
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name:<10} {:.3} ns/weight ({sink:.1})",
            best * 1e9 / (ROWS * COLS) as f64
        );
    };
    time("Q8_0", &|r| {
        q8_kernel(&q8[r * q8_row..(r + 1) * q8_row], &x)
    });
    let bf16: Vec<u8> = vals
        .iter()
        .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
        .collect();
    let bf16_kernel = qdot::kernel(DType::BF16).unwrap();
    time("BF16", &|r| {
        bf16_kernel(&bf16[r * 2 * COLS..(r + 1) * 2 * COLS], &x)
    });
    time("FP8 block", &|r| {
        qdot::fp8_block_row(&codes[r * COLS..(r + 1) * COLS], &scales, 128, &x)
    });
}
