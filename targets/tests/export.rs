//! The quality gate: a bundle beyond its thresholds is refused with nothing written, or kept
//! with `force` and recorded as failed, in which case `verify` fails too.

use std::path::PathBuf;

use wharf_targets::Gate;
use wharf_targets::export::{ExportOptions, export};
use wharf_targets::verify::verify;

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures/models")
        .join(p)
}

fn strict() -> ExportOptions {
    let mut o = ExportOptions::new(wharf_targets::by_name("pi4").unwrap());
    // Q4_0 always moves the distribution a little: a zero-KL gate must fail.
    o.gate = Some(Gate {
        min_top1: 1.0,
        decisive_margin: 1.0,
        max_mean_kl: 0.0,
        max_kl: 0.0,
    });
    o
}

#[test]
fn a_bundle_beyond_the_gate_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let err = export(&fixture("llama"), &out, &strict()).unwrap_err();
    assert!(matches!(err, wharf_targets::Error::Gate { .. }), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn forced_bundles_record_the_failure_and_fail_verify() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let mut opts = strict();
    opts.force = true;
    let done = export(&fixture("llama"), &out, &opts).unwrap();
    assert!(!done.manifest.reference.metrics.passed);
    let v = verify(&out).unwrap();
    assert!(v.hashes.ok());
    assert!(!v.ok());
}

#[test]
fn the_golden_is_recorded_from_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let opts = ExportOptions::new(wharf_targets::by_name("pi5").unwrap());
    export(&fixture("llama"), &out, &opts).unwrap();
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("reference.json")).unwrap()).unwrap();
    // transformers' greedy continuation of the same prompt (fixtures golden.json).
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("../golden/llama/golden.json")).unwrap())
            .unwrap();
    assert_eq!(golden["greedy"], want["greedy_8_hf_generate"]);
    assert_eq!(golden["prompt_ids"], want["input_ids"]);
    assert_eq!(golden["positions"].as_array().unwrap().len(), 16);
}
