//! Test kit shared by the crates' integration tests: fixture paths, golden logits read through
//! the reference crate's `.npy` decoder, and tensor-by-tensor equality of two sources.

use std::path::{Path, PathBuf};

use wharf_core::TensorSource;

/// `tests/data/<p>`: fixtures, attack files, vectors.
pub fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(p)
}

/// `tests/data/fixtures/<p>`.
pub fn fixture(p: &str) -> PathBuf {
    data("fixtures").join(p)
}

/// The values of an f32 (or f64, i32, i64) `.npy` file as f32.
pub fn npy_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let array =
        wharf_reference::npy::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    array.data.iter().map(|&v| v as f32).collect()
}

/// Asserts that `a` and `b` hold the same tensor names, metadata and bytes (order aside).
pub fn assert_same_tensors(a: &dyn TensorSource, b: &dyn TensorSource) {
    let sorted = |s: &dyn TensorSource| {
        let mut n: Vec<String> = s.tensors().iter().map(|m| m.name.clone()).collect();
        n.sort();
        n
    };
    let names = sorted(a);
    assert_eq!(names, sorted(b));
    for n in &names {
        assert_eq!(a.meta(n), b.meta(n), "{n}");
        assert_eq!(
            a.bytes(n).expect("bytes of a"),
            b.bytes(n).expect("bytes of b"),
            "{n}"
        );
    }
}
