//! Reductions whose result does not depend on the order of evaluation, written so that they
//! vectorise.

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
