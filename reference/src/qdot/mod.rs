//! Dot products of f32 activations with one stored weight row, read straight from its bytes.
//!
//! Every kernel here computes `Σ_i w_i · x_i` where `w_i` is exactly the f32 value the
//! quantizers crate's decoder (`wharf_quantizers::ggml::dequantize`) gives for element `i`
//! (same operations in the same order, so the same bits), accumulated in [`LANES`] lanes
//! (element `i` into lane `i % LANES`) and folded in a fixed pairwise order, with a sequential
//! tail for a row that is not a whole number of lanes. [`dense`] does the same over an f32 row,
//! so a fused product equals dequantize-then-[`dense`] bit for bit: which path `matmul` takes
//! never changes a result.
//!
//! Vectorisation: the bodies are plain lane loops that the compiler vectorises. On x86-64 each
//! entry point checks AVX2 at run time and calls the same body compiled with AVX2 enabled;
//! otherwise (and on aarch64, where NEON is baseline) the baseline build runs. FMA is never
//! enabled and no operation is reassociated, so every path gives identical bits.

mod float;
mod kquants;
mod legacy;
#[cfg(test)]
mod tests;

use wharf_core::DType;

/// Accumulator lanes: four AVX2 registers, eight SSE2/NEON ones.
pub const LANES: usize = 32;

/// Lanes per group: one AVX2 register. Writing the lanes as groups of 8 lets the compiler's
/// straight-line vectoriser use whole registers (a flat 32-lane array came out 2 lanes wide).
/// Checked by reading the `avx2` functions' assembly: one `vmulps`/`vaddps` pair per 8 weights.
const GROUP: usize = 8;

/// The accumulators: lane `l` is `acc[l / GROUP][l % GROUP]`.
type Acc = [[f32; GROUP]; LANES / GROUP];

/// `x ·` one stored row of `x.len()` elements; `row` is exactly that row's bytes.
pub type RowDot = fn(&[u8], &[f32]) -> f32;

/// The fused row kernel for a storage type, when there is one.
pub fn kernel(dtype: DType) -> Option<RowDot> {
    match dtype {
        DType::F32 => Some(f32_row),
        DType::BF16 => Some(float::bf16_row),
        DType::F16 => Some(float::f16_row),
        DType::Q8_0 => Some(legacy::q8_0),
        DType::Q4_0 => Some(legacy::q4_0),
        DType::Q4_1 => Some(legacy::q4_1),
        DType::Q5_0 => Some(legacy::q5_0),
        DType::Q5_1 => Some(legacy::q5_1),
        DType::Q4K => Some(kquants::q4_k),
        DType::Q6K => Some(kquants::q6_k),
        _ => None,
    }
}

pub use float::fp8_block_row;
pub(crate) use wharf_core::avx2_dispatch as dispatch;

/// `acc[l] += weight(l) * x[l]` for the [`LANES`] elements of one chunk: a separate multiply
/// and add (never fused).
// Index loops on purpose: with `iter_mut().zip().enumerate()` over the groups the vectoriser
// fell back to 2 lanes.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn mac(acc: &mut Acc, x: &[f32; LANES], weight: impl Fn(usize) -> f32) {
    let (x, _) = x.as_chunks::<GROUP>();
    for g in 0..LANES / GROUP {
        let w: [f32; GROUP] = std::array::from_fn(|i| weight(GROUP * g + i));
        for i in 0..GROUP {
            acc[g][i] += w[i] * x[g][i];
        }
    }
}

/// Sums the lanes pairwise: lane `l` and `l + half` added, `half` from 16 down to 1.
#[inline(always)]
fn fold(acc: Acc) -> f32 {
    // Handing the accumulators over as one array in memory keeps the vectoriser from shaping
    // the loop around this reduction tree (it then carried them as 2-lane pairs); it costs one
    // 128-byte store and reload per row and changes no value.
    let acc = std::hint::black_box(acc);
    let mut a: [f32; LANES] = std::array::from_fn(|l| acc[l / GROUP][l % GROUP]);
    let mut half = LANES / 2;
    while half > 0 {
        for l in 0..half {
            a[l] += a[l + half];
        }
        half /= 2;
    }
    a[0]
}

/// A little-endian f16 as f32, the value `half` gives (NaNs quietened), computed inline: a call
/// to `half`'s runtime-dispatched converter would spill every accumulator register per block.
#[inline(always)]
fn f16_at(b: &[u8], at: usize) -> f32 {
    let h = u32::from(u16::from_le_bytes([b[at], b[at + 1]]));
    let sign = (h & 0x8000) << 16;
    let (exp, man) = ((h >> 10) & 0x1f, h & 0x3ff);
    let bits = match exp {
        // Zero and subnormals: `man * 2^-24`, exact in f32.
        0 => (man as f32 * (1.0 / 16_777_216.0)).to_bits(),
        0x1f if man == 0 => 0x7f80_0000,
        0x1f => 0x7fc0_0000 | (man << 13),
        _ => ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(sign | bits)
}

#[inline(always)]
fn dense_body(w: &[f32], x: &[f32]) -> f32 {
    let n = w.len().min(x.len());
    let (wc, wt) = w[..n].as_chunks::<LANES>();
    let (xc, xt) = x[..n].as_chunks::<LANES>();
    let mut acc = Acc::default();
    for (w, x) in wc.iter().zip(xc) {
        mac(&mut acc, x, |l| w[l]);
    }
    let tail = wt.iter().zip(xt).fold(0f32, |s, (w, x)| s + w * x);
    fold(acc) + tail
}

dispatch! {
    /// `w · x` over the shorter length, in [`LANES`] lanes plus a sequential tail.
    pub fn dense(w: &[f32], x: &[f32]) -> f32 = dense_body;
}

/// [`dense_body`] over a row of little-endian f32 bytes.
#[inline(always)]
fn f32_row_body(row: &[u8], x: &[f32]) -> f32 {
    let n = (row.len() / 4).min(x.len());
    let (row, _) = row[..4 * n].as_chunks::<4>();
    let (wc, wt) = row.as_chunks::<LANES>();
    let (xc, xt) = x[..n].as_chunks::<LANES>();
    let mut acc = Acc::default();
    for (w, x) in wc.iter().zip(xc) {
        mac(&mut acc, x, |l| f32::from_le_bytes(w[l]));
    }
    let tail = wt
        .iter()
        .zip(xt)
        .fold(0f32, |s, (w, x)| s + f32::from_le_bytes(*w) * x);
    fold(acc) + tail
}

dispatch! {
    /// `x ·` an F32 row stored as little-endian bytes; equals [`dense`] on the decoded row.
    fn f32_row(row: &[u8], x: &[f32]) -> f32 = f32_row_body;
}
