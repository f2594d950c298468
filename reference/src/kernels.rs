//! The numeric kernels: row-block matrix products over [`Weights`], RMSNorm, SiLU, softmax.
//!
//! Determinism: every output element is one dot product computed by one task in a fixed order
//! ([`qdot::LANES`] interleaved partial sums, then a fixed pairwise fold), so results do not
//! depend on the number of threads. Stored rows that [`qdot`] reads in place give the same bits
//! as decoding them first, so neither does the choice between the two paths.

use rayon::prelude::*;
use wharf_core::DType;

use crate::qdot;
use crate::weights::{StoredRows, Weights};
use crate::{Error, Result};

/// f32 values decoded per task: big enough to amortise the call, small enough for L2.
const BLOCK_ELEMS: usize = 32 * 1024;

/// Up to how many tokens a matmul reads stored rows of `dtype` in place with [`qdot`]. Past
/// that, decoding a row block once and reusing it for every token costs less than decoding
/// every weight once per token; F32 has nothing to decode, so the copy never pays. Measured on
/// the SmolLM2-135M shape with 2 threads (AVX2): Q8_0 and Q4_0 in place are 2-3x faster at
/// 1-2 tokens, even at 3-4 and slower from 8; F32 in place is faster at 1-16 tokens and even
/// at 32-64.
fn fused_max_tokens(dtype: DType) -> usize {
    match dtype {
        DType::F32 => usize::MAX,
        // Widening a half is a shift or a few integer operations: in place wins longer.
        DType::BF16 | DType::F16 => 16,
        _ => 4,
    }
}

/// How a stored row is read in place.
#[derive(Clone, Copy)]
enum Fused {
    /// One kernel over the row's bytes.
    Row(qdot::RowDot),
    /// E4M3 codes with per-block scales ([`qdot::fp8_block_row`]).
    Fp8Block,
}

/// `x · y` over the shorter length, with [`qdot::LANES`] lanes summed in a fixed order.
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    qdot::dense(x, y)
}

/// `y[t, o] = Σ_i x[t, i] · W[o, i]` for the `n` rows of `x`; `y` is `[n, out]` row-major.
///
/// The weight is read in row blocks, each dequantized once and used for every token (or, for
/// few tokens, read in place by [`qdot`]), so the model is never held in f32.
pub fn matmul(w: &dyn Weights, name: &str, x: &[f32], n: usize) -> Result<Vec<f32>> {
    let [rows, cols] = w
        .shape(name)
        .ok_or_else(|| Error::MissingWeight(name.to_owned()))?;
    if x.len() != n * cols {
        return Err(Error::Shape {
            name: name.to_owned(),
            expected: vec![rows, x.len() / n.max(1)],
            actual: vec![rows, cols],
        });
    }
    let fused = fused_rows(w, name, n, rows);
    // Whole storage blocks per task (128 rows for block FP8), or each task would decode rows
    // it throws away.
    let align = w.row_align(name).max(1);
    let per_task = (BLOCK_ELEMS / cols.max(1))
        .max(1)
        .next_multiple_of(align)
        .min(rows.max(1));
    let blocks: Vec<Result<Vec<f32>>> = (0..rows.div_ceil(per_task))
        .into_par_iter()
        .map(|b| {
            let start = b * per_task;
            let br = per_task.min(rows - start);
            let mut out = vec![0f32; br * n];
            match &fused {
                Some((kernel, stored)) => {
                    in_place(*kernel, stored, name, start, x, cols, &mut out)?
                }
                None => decoded(w, name, start, x, cols, &mut out)?,
            }
            Ok(out)
        })
        .collect();
    w.release(name);
    let mut y = vec![0f32; n * rows];
    for (b, block) in blocks.into_iter().enumerate() {
        let block = block?;
        for (r, vals) in block.chunks_exact(n.max(1)).enumerate() {
            for (t, v) in vals.iter().enumerate() {
                y[t * rows + b * per_task + r] = *v;
            }
        }
    }
    Ok(y)
}

/// The stored rows of `name` and their kernel, when a product over `n` tokens should use them.
fn fused_rows<'w>(
    w: &'w dyn Weights,
    name: &str,
    n: usize,
    rows: usize,
) -> Option<(Fused, StoredRows<'w>)> {
    let stored = w.stored_rows(name).filter(|s| s.rows() == rows)?;
    if n > fused_max_tokens(stored.dtype) {
        return None;
    }
    let kernel = match stored.dtype {
        DType::F8E4M3 if stored.scale_rows() > 1 => Fused::Fp8Block,
        dtype => Fused::Row(qdot::kernel(dtype)?),
    };
    Some((kernel, stored))
}

/// `out[r * n + t]` for rows `start ..` read in place; `x` holds `n` rows of `cols`.
fn in_place(
    kernel: Fused,
    stored: &StoredRows<'_>,
    name: &str,
    start: usize,
    x: &[f32],
    cols: usize,
    out: &mut [f32],
) -> Result<()> {
    let n = x.len() / cols.max(1);
    let missing = |what: &str, r: usize| Error::Decode {
        name: name.to_owned(),
        reason: format!("stored {what} of row {r} missing"),
    };
    let (mut scales, mut scaled) = (Vec::new(), None);
    let width = stored.block_scales_width();
    for (r, o) in out.chunks_exact_mut(n.max(1)).enumerate() {
        let r = start + r;
        let row = stored.row(r).ok_or_else(|| missing("bytes", r))?;
        // The scales of a 128-row block row, read once for its rows.
        if matches!(kernel, Fused::Fp8Block) && scaled != Some(r / stored.scale_rows()) {
            scaled = Some(r / stored.scale_rows());
            stored
                .block_scales(r, &mut scales)
                .ok_or_else(|| missing("scales", r))?;
        }
        for (v, xrow) in o.iter_mut().zip(x.chunks_exact(cols)) {
            *v = match kernel {
                Fused::Row(k) => k(row, xrow),
                Fused::Fp8Block => qdot::fp8_block_row(row, &scales, width, xrow),
            };
        }
    }
    Ok(())
}

/// `out[r * n + t]` for rows `start ..` decoded to f32 once and used for every token.
fn decoded(
    w: &dyn Weights,
    name: &str,
    start: usize,
    x: &[f32],
    cols: usize,
    out: &mut [f32],
) -> Result<()> {
    let n = x.len() / cols.max(1);
    let br = out.len() / n.max(1);
    let mut wbuf = vec![0f32; br * cols];
    w.read_rows(name, start, &mut wbuf)?;
    for (wrow, o) in wbuf.chunks_exact(cols).zip(out.chunks_exact_mut(n.max(1))) {
        for (v, xrow) in o.iter_mut().zip(x.chunks_exact(cols)) {
            *v = dot(wrow, xrow);
        }
    }
    Ok(())
}

/// [`matmul`] plus a bias when the weight has one (`name` ends in `.weight`).
pub fn linear(w: &dyn Weights, name: &str, x: &[f32], n: usize, bias: bool) -> Result<Vec<f32>> {
    let mut y = matmul(w, name, x, n)?;
    if bias {
        let bname = format!("{}.bias", name.strip_suffix(".weight").unwrap_or(name));
        let b = crate::weights::whole(w, &bname)?;
        for row in y.chunks_exact_mut(b.len().max(1)) {
            row.iter_mut().zip(&b).for_each(|(y, b)| *y += b);
        }
    }
    Ok(y)
}

/// RMSNorm over each `weight.len()`-wide row: `x / sqrt(mean(x²) + eps) * weight`
/// (transformers `LlamaRMSNorm`, computed in f32).
pub fn rms_norm(x: &mut [f32], weight: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(weight.len().max(1)) {
        let ms = dot(row, row) / row.len() as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        row.iter_mut()
            .zip(weight)
            .for_each(|(v, w)| *v = w * (*v * inv));
    }
}

/// `silu(gate) * up`, in place in `gate`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    gate.iter_mut()
        .zip(up)
        .for_each(|(g, u)| *g = *g / (1.0 + (-*g).exp()) * u);
}

/// Softmax in place.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    x.iter_mut().for_each(|v| *v /= sum);
}
