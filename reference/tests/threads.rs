//! Logits do not depend on the number of threads: every output element is computed by one task
//! in a fixed order.

use std::path::{Path, PathBuf};

use wharf_reference::Model;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures")
}

fn logits_with(threads: usize, model: &Model, ids: &[u32]) -> Vec<u32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| model.logits(ids).unwrap())
        .data
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn identical_bits_at_one_two_and_three_threads() {
    let ids: Vec<u32> = (0..40).map(|i| (i * 37 + 5) % 1000).collect();
    for (m, file) in [
        ("models/deepseek_v3", None),
        ("reference/gguf", Some("llama-llamacpp-Q4_K_M.gguf")),
    ] {
        let path = data().join(m);
        let path = file.map_or(path.clone(), |f| path.join(f));
        let model = Model::open(&path).unwrap();
        let one = logits_with(1, &model, &ids);
        assert_eq!(one, logits_with(2, &model, &ids), "{m}");
        assert_eq!(one, logits_with(3, &model, &ids), "{m}");
    }
}

#[test]
fn cached_decoding_matches_full_recompute() {
    let model = Model::open(&data().join("models/qwen2")).unwrap();
    let ids: Vec<u32> = vec![0, 17, 345, 902, 5, 1000, 77];
    let full = model.logits(&ids).unwrap();
    let mut cache = model.new_cache();
    let first = model.forward(&ids[..4], &mut cache, true).unwrap();
    let rest = model.forward(&ids[4..], &mut cache, true).unwrap();
    let step: Vec<f32> = first.data.iter().chain(&rest.data).copied().collect();
    let d = full
        .data
        .iter()
        .zip(&step)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-5, "{d}");
    assert_eq!(cache.len(), ids.len());
}

#[test]
fn bad_requests_are_errors() {
    let model = Model::open(&data().join("models/llama")).unwrap();
    assert!(matches!(
        model.logits(&[5000]),
        Err(wharf_reference::Error::TokenOutOfRange { id: 5000, .. })
    ));
    assert!(matches!(
        model.logits(&[]),
        Err(wharf_reference::Error::Request(_))
    ));
    assert!(Model::open(&data().join("golden/llama")).is_err());
}

#[test]
fn releasing_pages_changes_nothing() {
    // Export and verify drop each weight's pages after use; the numbers must not move.
    let ids: Vec<u32> = (0..12).map(|i| (i * 53 + 7) % 1000).collect();
    for m in [
        "models/deepseek_v3",
        "models/deepseek_v3_fp8",
        "reference/gguf/llama-llamacpp-Q4_K_M.gguf",
    ] {
        let keep = Model::open(&data().join(m)).unwrap();
        let mut drop = Model::open(&data().join(m)).unwrap();
        drop.release_pages(true);
        assert_eq!(
            logits_with(2, &keep, &ids),
            logits_with(2, &drop, &ids),
            "{m}"
        );
        assert_eq!(
            keep.generate(&ids, 3).unwrap(),
            drop.generate(&ids, 3).unwrap()
        );
    }
}
