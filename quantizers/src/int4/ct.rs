//! compressed-tensors `pack-quantized` (W4A16 / W8A16), round to nearest, as compressed-tensors'
//! `calculate_qparams` + `_quantize` + `pack_to_int32` do it on CPU.
//!
//! Per group of `group` input channels (`qmin = -2^(bits-1)`, `qmax = 2^(bits-1) - 1`,
//! `lo = min(min(g), 0)`, `hi = max(max(g), 0)`), in the compute dtype:
//! - symmetric: `scale = max(|lo|, |hi|) / ((qmax - qmin) / 2)`, no zero point,
//!   `q = rint(clamp(w / scale, qmin, qmax))`;
//! - asymmetric: `scale = (hi - lo) / (qmax - qmin)`, `zp = rint(clamp(qmin - lo / scale))`,
//!   `q = rint(clamp(w / scale + zp, qmin, qmax))`.
//!
//! A zero scale becomes the compute dtype's epsilon (after the zero point was computed; an
//! all-zero group gets zero point 0). Dequantization is `(q - zp) * scale` in the compute dtype.
//! Codes are stored offset by `2^(bits-1)`: `weight_packed` along dim 1, `weight_zero_point`
//! along dim 0.

use rayon::prelude::*;
use wharf_core::DType;

use super::pack;
use crate::fp8::{check_finite, round_to};

use crate::{QuantError, Result};

/// Parameters of a compressed-tensors integer weight quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtParams {
    /// 4 or 8.
    pub bits: u32,
    /// Input channels per scale (`cols` for `strategy: "channel"`).
    pub group: usize,
    /// `symmetric: true` (no zero point).
    pub symmetric: bool,
    /// Dtype of the source weights, in which scales and divisions are rounded: F32, BF16, F16.
    pub compute: DType,
}

impl CtParams {
    /// `W4A16` (compressed-tensors preset): 4 bits, group 128, symmetric.
    pub const fn w4a16(compute: DType) -> Self {
        Self {
            bits: 4,
            group: 128,
            symmetric: true,
            compute,
        }
    }

    fn validate(&self, cols: usize) -> Result<()> {
        if !matches!(self.bits, 4 | 8) {
            return Err(QuantError::Parameter(format!(
                "pack-quantized bits {}",
                self.bits
            )));
        }
        if self.group == 0 || !cols.is_multiple_of(self.group) {
            let msg = format!("group {} does not divide {cols} columns", self.group);
            return Err(QuantError::Parameter(msg));
        }
        match self.compute {
            DType::F32 | DType::BF16 | DType::F16 => Ok(()),
            other => Err(QuantError::Unsupported(other)),
        }
    }

    fn qmin(&self) -> f32 {
        -((1u32 << (self.bits - 1)) as f32)
    }

    fn qmax(&self) -> f32 {
        ((1u32 << (self.bits - 1)) - 1) as f32
    }

    /// Offset that turns a signed code into the stored unsigned one.
    fn offset(&self) -> i32 {
        1 << (self.bits - 1)
    }

    fn round(&self, x: f32) -> f32 {
        round_to(self.compute, x)
    }

    fn epsilon(&self) -> f32 {
        match self.compute {
            DType::BF16 => 0.0078125,
            DType::F16 => 0.000_976_562_5,
            _ => f32::EPSILON,
        }
    }
}

/// The tensors of one `pack-quantized` Linear.
#[derive(Debug, Clone, PartialEq)]
pub struct CtPacked {
    /// `weight_packed`: `[rows, ceil(cols * bits / 32)]`.
    pub weight_packed: Vec<i32>,
    /// `weight_scale`: `[rows, cols / group]`, values representable in the compute dtype.
    pub weight_scale: Vec<f32>,
    /// `weight_zero_point` (asymmetric only): `[ceil(rows * bits / 32), cols / group]`.
    pub weight_zero_point: Option<Vec<i32>>,
    /// `weight_shape`: `[rows, cols]` (compressed-tensors writes `torch.tensor(shape)`).
    pub weight_shape: [usize; 2],
}

/// Quantizes a row-major `[rows, cols]` (out x in) weight to `pack-quantized`.
///
/// Errors: `Parameter` (bits, group), `Length`, `NonFinite`, `Unsupported` compute dtype.
pub fn quantize_pack(src: &[f32], rows: usize, cols: usize, p: CtParams) -> Result<CtPacked> {
    p.validate(cols)?;
    super::check_len("weight", rows.checked_mul(cols), src.len())?;
    check_finite(src)?;
    let groups = cols / p.group;
    let mut codes = vec![0u8; src.len()];
    let mut scales = vec![0f32; rows * groups];
    let mut zps = vec![0u8; rows * groups];
    codes
        .par_chunks_mut(p.group)
        .zip(scales.par_iter_mut().zip(zps.par_iter_mut()))
        .zip(src.par_chunks(p.group))
        .for_each(|((q, (scale, zp)), g)| {
            let (s, z) = group_qparams(g, &p);
            for (q, &w) in q.iter_mut().zip(g) {
                *q = (quantize_one(w, s, z, &p) as i32 + p.offset()) as u8;
            }
            *scale = s;
            *zp = (z as i32 + p.offset()) as u8;
        });
    Ok(CtPacked {
        weight_packed: pack::pack_dim1(&codes, cols, p.bits),
        weight_scale: scales,
        weight_zero_point: (!p.symmetric).then(|| pack::pack_dim0(&zps, groups, p.bits)),
        weight_shape: [rows, cols],
    })
}

/// `(scale, zero_point)` of one group; the zero point is 0 when symmetric.
fn group_qparams(g: &[f32], p: &CtParams) -> (f32, f32) {
    let lo = g.iter().fold(0f32, |m, &x| m.min(x));
    let hi = g.iter().fold(0f32, |m, &x| m.max(x));
    let range = p.qmax() - p.qmin();
    let (scale, zp) = if p.symmetric {
        (p.round(lo.abs().max(hi.abs()) / (range / 2.0)), 0.0)
    } else {
        let scale = p.round(p.round(hi - lo) / range);
        let zp = p.round(p.qmin() - p.round(lo / scale));
        // An all-zero group divides 0 by 0; torch's NaN cast to int8 gives 0 on x86.
        let zp = if zp.is_nan() {
            0.0
        } else {
            zp.clamp(p.qmin(), p.qmax()).round_ties_even()
        };
        (scale, zp)
    };
    (if scale == 0.0 { p.epsilon() } else { scale }, zp)
}

/// The signed code of `w`.
fn quantize_one(w: f32, scale: f32, zp: f32, p: &CtParams) -> f32 {
    let mut x = p.round(w / scale);
    if !p.symmetric {
        x = p.round(x + zp);
    }
    x.clamp(p.qmin(), p.qmax()).round_ties_even()
}

/// Dequantizes `pack-quantized` tensors to a row-major `[rows, cols]` weight:
/// `(q - zp) * scale`, rounded to `p.compute`.
pub fn dequantize_pack(
    weight_packed: &[i32],
    weight_scale: &[f32],
    weight_zero_point: Option<&[i32]>,
    shape: [usize; 2],
    p: CtParams,
) -> Result<Vec<f32>> {
    let [rows, cols] = shape;
    p.validate(cols)?;
    let groups = cols / p.group;
    let pf = pack::pack_factor(p.bits);
    super::check_len(
        "weight_packed",
        rows.checked_mul(cols.div_ceil(pf)),
        weight_packed.len(),
    )?;
    super::check_len("weight_scale", rows.checked_mul(groups), weight_scale.len())?;
    let codes = pack::unpack_dim1(weight_packed, rows, cols, p.bits);
    let zps = match (p.symmetric, weight_zero_point) {
        (true, _) => vec![p.offset() as u8; rows * groups],
        (false, Some(z)) => {
            super::check_len(
                "weight_zero_point",
                rows.div_ceil(pf).checked_mul(groups),
                z.len(),
            )?;
            pack::unpack_dim0(z, rows, groups, p.bits)
        }
        (false, None) => return Err(QuantError::Parameter("missing weight_zero_point".into())),
    };
    let mut out = vec![0f32; rows * cols];
    out.par_chunks_mut(p.group)
        .zip(codes.par_chunks(p.group))
        .zip(weight_scale.par_iter().zip(zps.par_iter()))
        .for_each(|((dst, q), (&s, &z))| {
            for (d, &c) in dst.iter_mut().zip(q) {
                *d = p.round((i32::from(c) - i32::from(z)) as f32 * s);
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_hand_computed() {
        // amax 7.5 -> scale 1; codes rint(w) + 8.
        let mut src = vec![0f32; 128];
        src[0] = 7.5;
        src[1] = -3.0;
        src[2] = 2.5; // tie -> 2
        src[3] = -7.5; // rint(-7.5) = -8
        let p = CtParams::w4a16(DType::F32);
        let packed = quantize_pack(&src, 1, 128, p).unwrap();
        assert_eq!(packed.weight_scale, vec![1.0]);
        // 7.5 clamps to 7 before rounding -> 15; -3 -> 5; 2.5 -> 2 -> 10; -7.5 -> -8 -> 0.
        assert_eq!(packed.weight_packed[0] as u32 & 0xFFFF, 0x0A5F);
        assert_eq!(packed.weight_packed.len(), 16);
        assert!(packed.weight_zero_point.is_none());
    }

    #[test]
    fn asymmetric_zero_point() {
        // lo = 0 (clamped), hi = 15 -> scale 1, zp = -8.
        let src: Vec<f32> = (0..128).map(|i| (i % 16) as f32).collect();
        let p = CtParams {
            symmetric: false,
            ..CtParams::w4a16(DType::F32)
        };
        let packed = quantize_pack(&src, 1, 128, p).unwrap();
        assert_eq!(packed.weight_scale, vec![1.0]);
        assert_eq!(packed.weight_zero_point, Some(vec![0]));
        assert_eq!(packed.weight_packed[0] as u32, 0x7654_3210);
    }

    #[test]
    fn round_trip_both_schemes() {
        let src: Vec<f32> = (0..4 * 256)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        for symmetric in [true, false] {
            for compute in [DType::F32, DType::BF16] {
                let p = CtParams {
                    symmetric,
                    ..CtParams::w4a16(compute)
                };
                let packed = quantize_pack(&src, 4, 256, p).unwrap();
                let zp = packed.weight_zero_point.as_deref();
                let back =
                    dequantize_pack(&packed.weight_packed, &packed.weight_scale, zp, [4, 256], p)
                        .unwrap();
                for (a, b) in src.iter().zip(&back) {
                    assert!((a - b).abs() <= 3.0 / 7.5 * 0.51 + 0.02, "{a} {b}");
                }
            }
        }
    }

    #[test]
    fn bad_group_is_a_parameter_error() {
        let p = CtParams::w4a16(DType::F32);
        assert!(matches!(
            quantize_pack(&[0.0; 100], 1, 100, p),
            Err(QuantError::Parameter(_))
        ));
    }
}
