//! Reductions whose result does not depend on the order of evaluation, written so that they
//! vectorise.

use rayon::prelude::*;

/// The largest `|v|`. Maximum is exact, so lanes may be combined in any order: eight running
/// maxima vectorise where C's one serial `MAX` chain cannot, with the same result for finite
/// input (quantizers refuse non-finite values first).
#[inline]
pub(crate) fn abs_max(x: &[f32]) -> f32 {
    let pick = |a: f32, b: f32| if a > b { a } else { b };
    let mut lanes = [0f32; 8];
    let (chunks, rest) = x.as_chunks::<8>();
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = pick(*m, v.abs());
        }
    }
    let tail = rest.iter().fold(0.0f32, |a, v| pick(a, v.abs()));
    lanes.iter().fold(tail, |a, &m| pick(a, m))
}

/// Index of the first NaN or infinity in `x`, searched in parallel (whole tensors are checked
/// before quantizing; a serial scan was a tenth of a 2-thread GGUF quantize). The result does
/// not depend on the thread count.
pub fn first_non_finite(x: &[f32]) -> Option<usize> {
    const CHUNK: usize = 1 << 16;
    x.par_chunks(CHUNK)
        .enumerate()
        .find_map_first(|(i, c)| chunk_non_finite(c).map(|p| i * CHUNK + p))
}

/// [`first_non_finite`] on one thread: a branch-free scan for the largest magnitude first (an
/// early-exit `position` does not vectorise), the element search only when a bad value is there.
pub(crate) fn chunk_non_finite(x: &[f32]) -> Option<usize> {
    crate::elements::first_non_finite(x)
}

#[cfg(test)]
mod tests {
    use super::{chunk_non_finite, first_non_finite};

    #[test]
    fn first_non_finite_finds_the_first_bad_value() {
        let mut x = vec![1.0f32; 300_000];
        assert_eq!(first_non_finite(&x), None);
        x[299_999] = f32::NAN;
        x[200_000] = f32::NAN;
        assert_eq!(first_non_finite(&x), Some(200_000));
        let mut x = vec![1.0f32; 10_000];
        assert_eq!(chunk_non_finite(&x), None);
        assert_eq!(first_non_finite(&x), None);
        assert_eq!(first_non_finite(&[]), None);
        x[9_000] = f32::NEG_INFINITY;
        assert_eq!(first_non_finite(&x), Some(9_000));
        x[5_000] = f32::NAN;
        x[4_097] = f32::MAX;
        assert_eq!(first_non_finite(&x), Some(5_000));
        x[3] = f32::INFINITY;
        assert_eq!(first_non_finite(&x), Some(3));
    }
}
