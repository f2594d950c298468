//! ggml type ids (ggml.h `enum ggml_type`, FORMATS.md b1), ids 0..=39.

use wharf_core::DType;

/// `(id, dtype)` for every id wharf reads and writes. Ids 4, 5 (Q4_2, Q4_3), 31-33
/// (Q4_0_4_4 ...) and 36-38 (IQ4_NL_x_x) were removed from ggml and are refused.
const IDS: &[(u32, DType)] = {
    use DType::*;
    &[
        (0, F32),
        (1, F16),
        (2, Q4_0),
        (3, Q4_1),
        (6, Q5_0),
        (7, Q5_1),
        (8, Q8_0),
        (9, Q8_1),
        (10, Q2K),
        (11, Q3K),
        (12, Q4K),
        (13, Q5K),
        (14, Q6K),
        (15, Q8K),
        (16, IQ2XXS),
        (17, IQ2XS),
        (18, IQ3XXS),
        (19, IQ1S),
        (20, IQ4NL),
        (21, IQ3S),
        (22, IQ2S),
        (23, IQ4XS),
        (24, I8),
        (25, I16),
        (26, I32),
        (27, I64),
        (28, F64),
        (29, IQ1M),
        (30, BF16),
        (34, TQ1_0),
        (35, TQ2_0),
        (39, MXFP4),
    ]
};

/// The dtype of ggml type `id`, or `None` for removed and unknown ids.
pub fn dtype_of_ggml(id: u32) -> Option<DType> {
    IDS.iter().find(|(i, _)| *i == id).map(|&(_, d)| d)
}

/// The ggml id of `dtype`, or `None` when GGUF cannot store it.
pub fn ggml_of_dtype(dtype: DType) -> Option<u32> {
    IDS.iter().find(|(_, d)| *d == dtype).map(|&(i, _)| i)
}

/// Whether the id is one ggml removed (a clear message beats "unknown type").
pub fn is_removed(id: u32) -> bool {
    matches!(id, 4 | 5 | 31..=33 | 36..=38)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sizes_match_ggml() {
        for &(id, d) in IDS {
            assert_eq!(ggml_of_dtype(d), Some(id));
            assert_eq!(dtype_of_ggml(id), Some(d));
        }
        // Spot checks against ggml-common.h block sizes.
        assert_eq!(dtype_of_ggml(12).unwrap().layout().bytes, 144);
        assert_eq!(dtype_of_ggml(39).unwrap().layout().bytes, 17);
        for removed in [4, 5, 31, 32, 33, 36, 37, 38, 40, 41, u32::MAX] {
            assert_eq!(dtype_of_ggml(removed), None);
        }
        assert!(is_removed(31) && !is_removed(30));
    }
}
