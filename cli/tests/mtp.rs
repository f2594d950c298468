//! DeepSeek's multi-token-prediction module (layer `num_hidden_layers`, V3/R1's
//! `model.layers.61.*`): read, named by `inspect`, kept in HF/FP8 outputs, left out of GGUF (as
//! llama.cpp's converter does for V3/R1) and MLX (as mlx-lm does), not run by the reference pass.
//! The fixture: `deepseek_v3` with its last layer declared the MTP module.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn wharf(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A copy of the folder `src` at `out` with `edit` applied to its config.json.
fn copy_with_config(src: &Path, out: &Path, edit: impl Fn(&mut Value)) {
    std::fs::create_dir(out).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), out.join(e.file_name())).unwrap();
    }
    let mut c: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(out.join("config.json"), c.to_string()).unwrap();
}

/// `deepseek_v3` with `num_hidden_layers` 2 and `num_nextn_predict_layers` 1.
fn with_mtp(dir: &Path) -> PathBuf {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures/models/deepseek_v3");
    let out = dir.join("ds_mtp");
    copy_with_config(&src, &out, |c| {
        c["num_hidden_layers"] = 2.into();
        c["num_nextn_predict_layers"] = 1.into();
    });
    out
}

fn names(json: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(json).unwrap();
    v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_mtp_module_is_named_kept_in_fp8_and_left_out_of_gguf_and_mlx() {
    let dir = tempfile::tempdir().unwrap();
    let src = with_mtp(dir.path());
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let report: Value = serde_json::from_str(&wharf(&["inspect", &s(&src), "--json"])).unwrap();
    assert_eq!(report["mtp"]["layers"], serde_json::json!([2]));
    let marked = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["mtp"] == true)
        .count();
    assert!(marked > 0 && report["mtp"]["tensors"] == marked);
    assert!(wharf(&["inspect", &s(&src)]).contains("multi-token-prediction"));

    let gguf = dir.path().join("q.gguf");
    wharf(&[
        "quantize",
        &s(&src),
        "-o",
        &s(&gguf),
        "--scheme",
        "gguf:Q8_0",
    ]);
    let g: Value = serde_json::from_str(&wharf(&["inspect", &s(&gguf), "--json"])).unwrap();
    assert!(
        names(&g.to_string())
            .iter()
            .all(|n| !n.starts_with("blk.2."))
    );
    assert_eq!(g["metadata"]["deepseek2.block_count"], "2");

    let mlx = dir.path().join("mlx");
    wharf(&["quantize", &s(&src), "-o", &s(&mlx), "--scheme", "mlx4"]);
    let m = wharf(&["inspect", &s(&mlx), "--json"]);
    assert!(names(&m).iter().all(|n| !n.starts_with("model.layers.2.")));

    let fp8 = dir.path().join("fp8");
    wharf(&[
        "quantize",
        &s(&src),
        "-o",
        &s(&fp8),
        "--scheme",
        "fp8-block",
    ]);
    let f = wharf(&["inspect", &s(&fp8), "--json"]);
    assert!(
        names(&f)
            .iter()
            .any(|n| n.starts_with("model.layers.2.mlp.experts."))
    );

    // The reference pass runs the two decoder layers and nothing of the module: its logits
    // are those of the same folder with the module's tensors gone (an FP8 folder of layers
    // 0-1 only would change values, so the check is on the source's own tensors).
    let logits = |m: &Path, out: &str| {
        let npy = dir.path().join(out);
        wharf(&[
            "infer",
            &s(m),
            "--ids",
            "0,17,345,902",
            "--max-new",
            "2",
            "--logits-out",
            &s(&npy),
        ]);
        std::fs::read(npy).unwrap()
    };
    let plain = dir.path().join("plain");
    copy_with_config(&src, &plain, |c| c["num_nextn_predict_layers"] = 0.into());
    assert_eq!(logits(&src, "a.npy"), logits(&plain, "b.npy"));
}
