//! Storage types: dense, FP8, packed sub-byte and GGML blocks in one enum.
//!
//! Sizes are expressed as *N elements in M bytes* ([`BlockLayout`]) so a sub-byte type never has
//! a size of zero and every byte count is computed with checked arithmetic.
//! GGML block sizes are those of libggml's `ggml-common.h` (`static_assert`s on each block struct).

use std::fmt;
use std::str::FromStr;

use crate::LayoutError;

/// `elems` logical values occupy exactly `bytes` bytes (F32 = 1/4, I4 = 2/1, Q4_0 = 32/18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockLayout {
    /// Elements per block.
    pub elems: u32,
    /// Bytes per block.
    pub bytes: u32,
}

/// Broad class of a storage type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DTypeFamily {
    /// Booleans and integers.
    Integer,
    /// IEEE and brain floats of 16 bits and more.
    Float,
    /// 8-bit and 4-bit floats (FP8, E8M0 scales, FP4).
    SmallFloat,
    /// Two values per byte, integer.
    PackedInteger,
    /// GGML quantized blocks.
    GgmlBlock,
}

/// Every storage type wharf reads or writes.
#[allow(non_camel_case_types, missing_docs)]
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    BF16,
    F32,
    F64,
    /// FP8 E4M3 "FN" (no infinities, one NaN pattern per sign), as torch `float8_e4m3fn`.
    F8E4M3,
    /// FP8 E5M2, IEEE-like.
    F8E5M2,
    /// Unsigned 8-bit exponent (MX scales).
    F8E8M0,
    /// Signed 4-bit integers, two per byte, low nibble first.
    I4,
    /// Unsigned 4-bit integers, two per byte, low nibble first.
    U4,
    /// FP4 E2M1, two per byte.
    F4E2M1,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    IQ2XXS,
    IQ2XS,
    IQ3XXS,
    IQ1S,
    IQ4NL,
    IQ3S,
    IQ2S,
    IQ4XS,
    IQ1M,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

/// One row per dtype: (dtype, name, elements per block, bytes per block, family).
/// This is the only table of per-dtype facts; everything else derives from it.
const TABLE: &[(DType, &str, u32, u32, DTypeFamily)] = {
    use DType::*;
    use DTypeFamily::*;
    &[
        (Bool, "BOOL", 1, 1, Integer),
        (U8, "U8", 1, 1, Integer),
        (I8, "I8", 1, 1, Integer),
        (U16, "U16", 1, 2, Integer),
        (I16, "I16", 1, 2, Integer),
        (U32, "U32", 1, 4, Integer),
        (I32, "I32", 1, 4, Integer),
        (U64, "U64", 1, 8, Integer),
        (I64, "I64", 1, 8, Integer),
        (F16, "F16", 1, 2, Float),
        (BF16, "BF16", 1, 2, Float),
        (F32, "F32", 1, 4, Float),
        (F64, "F64", 1, 8, Float),
        (F8E4M3, "F8_E4M3", 1, 1, SmallFloat),
        (F8E5M2, "F8_E5M2", 1, 1, SmallFloat),
        (F8E8M0, "F8_E8M0", 1, 1, SmallFloat),
        (I4, "I4", 2, 1, PackedInteger),
        (U4, "U4", 2, 1, PackedInteger),
        (F4E2M1, "F4", 2, 1, SmallFloat),
        (Q4_0, "Q4_0", 32, 18, GgmlBlock),
        (Q4_1, "Q4_1", 32, 20, GgmlBlock),
        (Q5_0, "Q5_0", 32, 22, GgmlBlock),
        (Q5_1, "Q5_1", 32, 24, GgmlBlock),
        (Q8_0, "Q8_0", 32, 34, GgmlBlock),
        // libggml: 2 halves + 32 int8 (gguf-py 0.19's table says 40; the C struct is what loads).
        (Q8_1, "Q8_1", 32, 36, GgmlBlock),
        (Q2K, "Q2_K", 256, 84, GgmlBlock),
        (Q3K, "Q3_K", 256, 110, GgmlBlock),
        (Q4K, "Q4_K", 256, 144, GgmlBlock),
        (Q5K, "Q5_K", 256, 176, GgmlBlock),
        (Q6K, "Q6_K", 256, 210, GgmlBlock),
        (Q8K, "Q8_K", 256, 292, GgmlBlock),
        (IQ2XXS, "IQ2_XXS", 256, 66, GgmlBlock),
        (IQ2XS, "IQ2_XS", 256, 74, GgmlBlock),
        (IQ3XXS, "IQ3_XXS", 256, 98, GgmlBlock),
        (IQ1S, "IQ1_S", 256, 50, GgmlBlock),
        (IQ4NL, "IQ4_NL", 32, 18, GgmlBlock),
        (IQ3S, "IQ3_S", 256, 110, GgmlBlock),
        (IQ2S, "IQ2_S", 256, 82, GgmlBlock),
        (IQ4XS, "IQ4_XS", 256, 136, GgmlBlock),
        (IQ1M, "IQ1_M", 256, 56, GgmlBlock),
        (TQ1_0, "TQ1_0", 256, 54, GgmlBlock),
        (TQ2_0, "TQ2_0", 256, 66, GgmlBlock),
        (MXFP4, "MXFP4", 32, 17, GgmlBlock),
    ]
};

const fn row(dtype: DType) -> &'static (DType, &'static str, u32, u32, DTypeFamily) {
    let mut i = 0;
    while i < TABLE.len() {
        if TABLE[i].0 as u8 == dtype as u8 {
            return &TABLE[i];
        }
        i += 1;
    }
    panic!("dtype missing from TABLE")
}

// Every variant has exactly one row, in declaration order (checked at compile time).
const _: () = {
    let mut i = 0;
    while i < TABLE.len() {
        assert!(TABLE[i].0 as usize == i);
        i += 1;
    }
    assert!(DType::MXFP4 as usize + 1 == TABLE.len());
};

impl DType {
    /// Every dtype, in declaration order.
    pub fn all() -> impl Iterator<Item = DType> {
        TABLE.iter().map(|r| r.0)
    }

    /// Elements per block and bytes per block.
    pub const fn layout(self) -> BlockLayout {
        let r = row(self);
        BlockLayout {
            elems: r.2,
            bytes: r.3,
        }
    }

    /// The canonical spelling (safetensors for dense and FP8 types, ggml for blocks).
    pub const fn name(self) -> &'static str {
        row(self).1
    }

    /// The broad class of this type.
    pub const fn family(self) -> DTypeFamily {
        row(self).4
    }

    /// Whether this is a GGML block type (quantized in blocks of 32 or 256).
    pub const fn is_ggml_block(self) -> bool {
        matches!(self.family(), DTypeFamily::GgmlBlock)
    }

    /// Whether this is a dense float of 16 bits or more (F16, BF16, F32, F64).
    pub const fn is_float(self) -> bool {
        matches!(self.family(), DTypeFamily::Float)
    }

    /// Bytes for `n` elements; an error, never a rounding or a wrap.
    pub fn nbytes(self, n: u64) -> Result<u64, LayoutError> {
        let BlockLayout { elems, bytes } = self.layout();
        if !n.is_multiple_of(u64::from(elems)) {
            return Err(LayoutError::PartialBlock { dtype: self, n });
        }
        (n / u64::from(elems))
            .checked_mul(u64::from(bytes))
            .ok_or(LayoutError::Overflow)
    }

    /// Bytes of one row of `row_len` elements; the row must hold whole blocks.
    pub fn row_bytes(self, row_len: u64) -> Result<u64, LayoutError> {
        self.nbytes(row_len).map_err(|e| match e {
            LayoutError::PartialBlock { .. } => LayoutError::PartialRow {
                dtype: self,
                row: row_len,
            },
            other => other,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dtype name wharf does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype `{0}`")]
pub struct UnknownDType(pub String);

impl FromStr for DType {
    type Err = UnknownDType;

    /// Parses the canonical spelling, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TABLE
            .iter()
            .find(|r| r.1.eq_ignore_ascii_case(s))
            .map(|r| r.0)
            .ok_or_else(|| UnknownDType(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for d in DType::all() {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
            assert_eq!(d.name().to_lowercase().parse::<DType>().unwrap(), d);
        }
        assert!("F8_E4M3FNUZ".parse::<DType>().is_err());
    }

    #[test]
    fn sub_byte_types_never_have_zero_size() {
        assert_eq!(DType::I4.nbytes(4096).unwrap(), 2048);
        assert_eq!(DType::F4E2M1.nbytes(2).unwrap(), 1);
        assert!(matches!(
            DType::I4.nbytes(3),
            Err(LayoutError::PartialBlock { .. })
        ));
        assert!(matches!(
            DType::Q4K.row_bytes(128),
            Err(LayoutError::PartialRow { .. })
        ));
    }

    #[test]
    fn ggml_sizes_match_libggml() {
        assert_eq!(DType::Q4_0.nbytes(64).unwrap(), 36);
        assert_eq!(DType::Q6K.nbytes(512).unwrap(), 420);
        assert_eq!(
            DType::MXFP4.layout(),
            BlockLayout {
                elems: 32,
                bytes: 17
            }
        );
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(DType::F64.nbytes(u64::MAX), Err(LayoutError::Overflow));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn nbytes_is_additive(a in 0u64..1 << 40, b in 0u64..1 << 40, i in 0usize..43) {
            let d = DType::all().nth(i % TABLE.len()).unwrap();
            let e = u64::from(d.layout().elems);
            let (a, b) = (a * e, b * e);
            prop_assert_eq!(d.nbytes(a + b).unwrap(), d.nbytes(a).unwrap() + d.nbytes(b).unwrap());
        }
    }
}
