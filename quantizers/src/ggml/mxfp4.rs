//! MXFP4: blocks of 32 FP4 (E2M1) values sharing one E8M0 power-of-two scale (4.25 bits).
//!
//! layout: ggml/src/ggml-common.h `block_mxfp4` (`e: u8` E8M0, `qs: [u8; 16]`, element `j` in
//! the low nibble of byte `j`, element `j + 16` in its high nibble); values are
//! `kvalues_mxfp4` (doubled E2M1) times half the scale (`ggml_e8m0_to_fp32_half`).
//! quantizer: ggml/src/ggml-quants.c `quantize_row_mxfp4_ref` (`quantize_mxfp4` ignores an
//! importance matrix). The exponent uses `floor(log2f(amax))` as libggml does, so it matches
//! where Rust's `f32::log2` and libggml's `log2f` agree (the same libm on Linux).

const QK: usize = 32;
const BYTES: usize = 17;

/// Doubled E2M1 values, indexed by the 4-bit code (ggml-common.h `kvalues_fp4`).
const KVALUES: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// Half of the E8M0 scale `e`, exactly (subnormal for `e < 2`).
fn e8m0_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        u32::from(e - 1) << 23
    };
    f32::from_bits(bits)
}

/// Code whose value times `d` is nearest to `x` (the first on ties).
fn best_index(x: f32, d: f32) -> u8 {
    let mut best = (0u8, (f32::from(KVALUES[0]) * d - x).abs());
    for (i, &k) in KVALUES.iter().enumerate().skip(1) {
        let err = (f32::from(k) * d - x).abs();
        if err < best.1 {
            best = (i as u8, err);
        }
    }
    best.0
}

/// Quantizes one row (a whole number of blocks); the importance matrix is unused.
pub(super) fn quantize_row(x: &[f32], _imatrix: Option<&[f32]>, y: &mut [u8]) {
    let (xb, _) = x.as_chunks::<QK>();
    let (yb, _) = y.as_chunks_mut::<BYTES>();
    for (x, y) in xb.iter().zip(yb) {
        let amax = x
            .iter()
            .fold(0.0f32, |a, v| if a < v.abs() { v.abs() } else { a });
        // C converts the float to uint8_t; x86 truncates through a 32-bit integer.
        let e = if amax > 0.0 {
            (amax.log2().floor() - 2.0 + 127.0) as i32 as u8
        } else {
            0
        };
        let d = e8m0_half(e);
        y[0] = e;
        for j in 0..QK / 2 {
            y[1 + j] = best_index(x[j], d) | (best_index(x[j + QK / 2], d) << 4);
        }
    }
}

/// Decodes whole blocks.
pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (xb, _) = src.as_chunks::<BYTES>();
    for (b, y) in xb.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = e8m0_half(b[0]);
        for j in 0..QK / 2 {
            y[j] = f32::from(KVALUES[usize::from(b[1 + j] & 0xf)]) * d;
            y[j + QK / 2] = f32::from(KVALUES[usize::from(b[1 + j] >> 4)]) * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e8m0_half_is_exact() {
        assert_eq!(e8m0_half(127), 0.5);
        assert_eq!(e8m0_half(128), 1.0);
        assert_eq!(e8m0_half(1), 2f32.powi(-127));
        assert_eq!(e8m0_half(0), 2f32.powi(-128));
    }

    #[test]
    fn powers_of_two_round_trip() {
        let x: Vec<f32> = (0..32)
            .map(|i| [0.5f32, -1.0, 2.0, 3.0, -6.0, 0.0][i % 6])
            .collect();
        let mut q = [0u8; BYTES];
        quantize_row(&x, None, &mut q);
        let mut y = [0f32; QK];
        dequantize(&q, &mut y);
        assert_eq!(&y[..], &x[..]);
    }
}
