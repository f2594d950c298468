//! FP8: E4M3FN and E5M2 codecs with per-tensor, per-channel and 2-D block scales.
//!
//! Specs: OCP 8-bit floating point (E4M3FN has no infinities and one NaN per sign);
//! DeepSeek-V3 `inference/kernel.py` and compressed-tensors `calculate_qparams` for the scales.
//!
//! # API
//! - [`Fp8Format`] (`E4M3`, `E5M2`) with [`Fp8Format::encode`], [`Fp8Format::decode`],
//!   [`Fp8Format::table`]; the free functions [`encode`], [`decode`], [`encode_slice`],
//!   [`decode_slice`]. Encoding rounds to nearest even and saturates (±448 / ±57344, also for
//!   ±inf); NaN becomes `0x7F | sign`. Decoding is exact for all 256 codes.
//! - [`Fp8Options`]: format, [`ZeroScale`] rule and compute dtype.
//!   [`Fp8Options::DEEPSEEK`] and [`Fp8Options::compressed_tensors`] are the two producers.
//! - [`quantize_per_tensor`] / [`dequantize_per_tensor`]: one scale `amax / fmax`.
//! - [`quantize_per_channel`] / [`dequantize_per_channel`]: one scale per output row.
//! - [`quantize_blocks`] / [`dequantize_blocks`] / [`block_grid`]: one scale per block
//!   (DeepSeek `weight_scale_inv`, `[ceil(rows/128), ceil(cols/128)]`).
//! - `quantize_*_into`: the same from any [`crate::Elements`] (BF16 read in place) into caller
//!   buffers.
//!
//! Every function is pure and parallel over rows or blocks with rayon; results do not depend on
//! the thread count (maxima are exact and each element is rounded on its own).

mod block;
pub mod e4m3;
pub mod e5m2;
mod kernel;
mod minifloat;
mod options;
mod per_channel;
mod per_tensor;

use rayon::prelude::*;
use wharf_core::DType;

pub use block::{block_grid, dequantize_blocks, quantize_blocks, quantize_blocks_into};
pub use options::{Fp8Options, ZeroScale};
pub(crate) use options::{check_finite, round_to};
pub use per_channel::{dequantize_per_channel, quantize_per_channel, quantize_per_channel_into};
pub use per_tensor::{dequantize_per_tensor, quantize_per_tensor, quantize_per_tensor_into};

use crate::Result;

/// An 8-bit float format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fp8Format {
    /// `float8_e4m3fn`: range ±448, no infinities.
    E4M3,
    /// `float8_e5m2`: range ±57344, with infinities.
    E5M2,
}

impl Fp8Format {
    /// The storage dtype (`F8_E4M3` or `F8_E5M2`).
    pub const fn dtype(self) -> DType {
        match self {
            Self::E4M3 => DType::F8E4M3,
            Self::E5M2 => DType::F8E5M2,
        }
    }

    /// Largest finite value.
    pub const fn max(self) -> f32 {
        match self {
            Self::E4M3 => e4m3::MAX,
            Self::E5M2 => e5m2::MAX,
        }
    }

    /// The format of a storage dtype, if it is an FP8 one this module handles.
    pub const fn from_dtype(dtype: DType) -> Option<Self> {
        match dtype {
            DType::F8E4M3 => Some(Self::E4M3),
            DType::F8E5M2 => Some(Self::E5M2),
            _ => None,
        }
    }

    /// Encodes one value (round to nearest even, saturating, NaN kept).
    #[inline]
    pub fn encode(self, x: f32) -> u8 {
        match self {
            Self::E4M3 => e4m3::encode(x),
            Self::E5M2 => e5m2::encode(x),
        }
    }

    /// Decodes one code exactly.
    pub fn decode(self, code: u8) -> f32 {
        self.table()[usize::from(code)]
    }

    /// The value of every code, indexed by the byte.
    pub fn table(self) -> &'static [f32; 256] {
        match self {
            Self::E4M3 => &e4m3::DECODE,
            Self::E5M2 => &e5m2::DECODE,
        }
    }
}

/// Encodes one value, see [`Fp8Format::encode`].
pub fn encode(format: Fp8Format, x: f32) -> u8 {
    format.encode(x)
}

/// Decodes one code, see [`Fp8Format::decode`].
pub fn decode(format: Fp8Format, code: u8) -> f32 {
    format.decode(code)
}

/// Elements per parallel work item.
const CHUNK: usize = 1 << 14;

/// Encodes `src` into `dst` without scaling (a plain cast, saturating).
pub fn encode_slice(format: Fp8Format, src: &[f32], dst: &mut [u8]) -> Result<()> {
    options::check_len(format.dtype(), "dst", src.len(), dst.len())?;
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| {
            for (d, &x) in d.iter_mut().zip(s) {
                *d = format.encode(x);
            }
        });
    Ok(())
}

/// Decodes `src` into `dst` without scaling.
pub fn decode_slice(format: Fp8Format, src: &[u8], dst: &mut [f32]) -> Result<()> {
    options::check_len(format.dtype(), "dst", src.len(), dst.len())?;
    let table = format.table();
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| {
            for (d, &b) in d.iter_mut().zip(s) {
                *d = table[usize::from(b)];
            }
        });
    Ok(())
}
