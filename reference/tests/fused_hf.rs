//! HF folders read in place (BF16 and F32 rows, DeepSeek's block FP8 with its scales) give the
//! same bits as decoding the rows first, for every weight of the fixtures, and whole models
//! generate the same logits either way.

use std::path::{Path, PathBuf};

use wharf_converters::AnySource;
use wharf_core::model::ModelSpec;
use wharf_reference::kernels::matmul;
use wharf_reference::weights::{HfWeights, StoredRows, Weights};
use wharf_reference::{Model, Result};

/// A model folder: `models/NAME`, or a path under the fixtures.
fn fixture(m: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures");
    match m.contains('/') {
        true => root.join(m),
        false => root.join("models").join(m),
    }
}

/// The same weights with nothing read in place.
#[derive(Debug)]
struct Decoded(HfWeights);

impl Weights for Decoded {
    fn spec(&self) -> &ModelSpec {
        self.0.spec()
    }
    fn shape(&self, name: &str) -> Option<[usize; 2]> {
        self.0.shape(name)
    }
    fn read_rows(&self, name: &str, start: usize, out: &mut [f32]) -> Result<()> {
        self.0.read_rows(name, start, out)
    }
    fn row_align(&self, name: &str) -> usize {
        self.0.row_align(name)
    }
    fn stored_rows(&self, _name: &str) -> Option<StoredRows<'_>> {
        None
    }
}

fn weights(m: &str) -> HfWeights {
    let src = AnySource::open(fixture(m)).unwrap();
    let AnySource::Safetensors {
        config: Some((config, spec)),
        ..
    } = &src
    else {
        panic!("{m}: not an HF folder");
    };
    let (config, spec) = (config.clone(), spec.clone());
    HfWeights::new(src, Some(&config), spec).unwrap()
}

#[test]
fn every_weight_multiplies_the_same_in_place_and_decoded() {
    // The last has partial FP8 blocks (kv_a_proj_with_mqa, 192 rows).
    let models = [
        "deepseek_v3_fp8",
        "mistral_bf16",
        "llama",
        "reference/fp8/deepseek_v3_fp8_block",
    ];
    for m in models {
        let fused = weights(m);
        let decoded = Decoded(weights(m));
        let names: Vec<String> = wharf_converters::AnySource::open(fixture(m))
            .unwrap()
            .hf()
            .unwrap()
            .order
            .clone();
        let mut in_place = 0;
        for name in names
            .iter()
            .filter(|n| n.ends_with("proj.weight") || n.ends_with("mqa.weight"))
        {
            let Some([_, cols]) = fused.shape(name) else {
                continue;
            };
            in_place += usize::from(fused.stored_rows(name).is_some());
            let x: Vec<f32> = (0..cols)
                .map(|i| ((i * 7919) % 1013) as f32 / 500.0 - 1.0)
                .collect();
            let a = matmul(&fused, name, &x, 1).unwrap();
            let b = matmul(&decoded, name, &x, 1).unwrap();
            let same = a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{m}: `{name}`");
        }
        assert!(in_place > 0, "{m}: no weight read in place");
    }
}

/// Token after token through the cache (one-token products, read in place where possible).
fn stepped(m: &Model, ids: &[u32]) -> Vec<u32> {
    let mut cache = m.new_cache();
    let mut bits = Vec::new();
    for &id in ids {
        let l = m.forward(&[id], &mut cache, false).unwrap();
        bits.extend(l.data.iter().map(|v| v.to_bits()));
    }
    bits
}

#[test]
fn generation_reads_in_place_with_the_decoded_logits() {
    let ids = [0u32, 17, 345, 902, 5, 1000];
    for m in ["reference/fp8/deepseek_v3_fp8_block", "mistral_bf16"] {
        let fused = Model::from_weights(Box::new(weights(m))).unwrap();
        let decoded = Model::from_weights(Box::new(Decoded(weights(m)))).unwrap();
        assert!(stepped(&fused, &ids) == stepped(&decoded, &ids), "{m}");
    }
}
