//! `wharf quantize --scheme int4`: compressed-tensors `pack-quantized` W4A16 folders that read
//! back through wharf's own compressed-tensors reader within one int4 step of the source (half a
//! step for `int4-asym`, which adds a zero point per group), carry
//! compressed-tensors 0.20's `quantization_config`, and run in `wharf infer`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use wharf_converters::hf::storage::QuantizedView;
use wharf_converters::safetensors::SafetensorsSource;
use wharf_core::{DType, TensorSource};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures/models")
        .join(p)
}

fn wharf(args: &[&str], threads: &str) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn config(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

#[test]
fn llama_int4_reads_back_within_one_step_and_runs() {
    reads_back_and_runs("int4");
}

#[test]
fn llama_int4_asym_reads_back_within_half_a_step_and_runs() {
    reads_back_and_runs("int4-asym");
}

fn reads_back_and_runs(scheme: &str) {
    let symmetric = scheme == "int4";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(scheme);
    let src_dir = fixture("llama");
    let o = out.to_str().unwrap();
    wharf(
        &[
            "quantize",
            src_dir.to_str().unwrap(),
            "-o",
            o,
            "--scheme",
            scheme,
        ],
        "2",
    );

    let q = config(&out)["quantization_config"].clone();
    assert_eq!(q["format"], "pack-quantized");
    assert_eq!(q["quant_method"], "compressed-tensors");
    assert_eq!(q["ignore"], json!(["lm_head"]));
    assert_eq!(
        q["config_groups"]["group_0"]["weights"],
        json!({"dynamic": false, "group_size": 128, "num_bits": 4, "strategy": "group",
            "symmetric": symmetric, "type": "int"})
    );

    let stored = SafetensorsSource::open_dir(&out).unwrap();
    let dtype = |n: &str| stored.meta(n).map(|m| (m.dtype, m.shape.dims().to_vec()));
    let base = "model.layers.0.mlp.down_proj";
    assert_eq!(
        dtype(&format!("{base}.weight_packed")),
        Some((DType::I32, vec![256, 96]))
    );
    assert_eq!(
        dtype(&format!("{base}.weight_scale")),
        Some((DType::F32, vec![256, 6]))
    );
    assert_eq!(
        dtype(&format!("{base}.weight_shape")),
        Some((DType::I64, vec![2]))
    );
    assert_eq!(
        dtype(&format!("{base}.weight_zero_point")),
        (!symmetric).then(|| (DType::I32, vec![256 / 8, 6])),
        "a zero point per group, packed 8 rows to a word, only when asymmetric"
    );
    assert!(stored.meta(&format!("{base}.weight")).is_none());

    let source = SafetensorsSource::open_dir(&src_dir).unwrap();
    let view = QuantizedView::new(&stored, Some(&config(&out))).unwrap();
    assert!(view.is_quantized());
    let mut checked = 0;
    for m in source.tensors() {
        let want = wharf_converters::pipeline::read_f32(&source, &m.name).unwrap();
        let got = view.read_f32(&m.name).unwrap();
        assert_eq!(got.len(), want.len(), "{}", m.name);
        if !m.name.ends_with("_proj.weight") {
            assert_eq!(got, want, "{} is left dense", m.name);
            continue;
        }
        // Symmetric 4-bit: one step is max|w| / 8 per group of 128; rounding errs by half a
        // step inside the range and at most a step at the clamped top code. Asymmetric: the
        // step is (max - min) / 15 with 0 in the range; the integer zero point shifts the grid by
        // under half a step and both ends still round onto codes -8 and 7, so half a step.
        for (i, (g, w)) in got.chunks(128).zip(want.chunks(128)).enumerate() {
            let (lo, hi) = w
                .iter()
                .fold((0f32, 0f32), |(l, h), &x| (l.min(x), h.max(x)));
            let bound = if symmetric {
                lo.abs().max(hi) / 8.0
            } else {
                (hi - lo) / 15.0 * 0.5
            };
            let err = g.iter().zip(w).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
            assert!(
                err <= bound * 1.0001,
                "{} group {i}: {err} > {bound}",
                m.name
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 14, "2 layers x 7 Linears");

    // Same bytes at another thread count.
    let again = dir.path().join("again");
    wharf(
        &[
            "quantize",
            src_dir.to_str().unwrap(),
            "-o",
            again.to_str().unwrap(),
            "--scheme",
            scheme,
        ],
        "1",
    );
    for name in ["model.safetensors", "config.json"] {
        assert!(
            std::fs::read(out.join(name)).unwrap() == std::fs::read(again.join(name)).unwrap(),
            "{name}"
        );
    }

    let text = wharf(
        &["infer", o, "--ids", "1,2,3", "--max-new", "2", "--json"],
        "2",
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["generated"].as_array().map(Vec::len), Some(2), "{text}");
}
