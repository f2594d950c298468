//! `wharf export` / `wharf verify` end to end: every fixture to every target it fits, every
//! tampering caught naming the file (folders and zips), byte-identical bundles at any thread
//! count, preflight and quality-gate refusals that leave nothing behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn wharf(args: &[&str], threads: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .env("RAYON_NUM_THREADS", threads)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures/models")
        .join(p)
}

fn export(model: &str, target: &str, out: &Path, extra: &[&str]) -> Output {
    let src = fixture(model);
    let mut args = vec![
        "export",
        src.to_str().unwrap(),
        "--target",
        target,
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    wharf(&args, "2")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn every_fixture_exports_to_every_target_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("llama", &["h800", "apple-silicon", "pi5", "pi4"]),
        // h800: 64-row k/v projections, refused as mistral_bf16's are (below).
        ("llama_tied", &["apple-silicon", "pi5", "pi4"]),
        ("qwen2", &["h800", "apple-silicon", "pi5", "pi4"]),
        // h800: refused, see below.
        ("mistral_bf16", &["apple-silicon", "pi5", "pi4"]),
        ("deepseek_v3", &["h800", "apple-silicon", "pi5", "pi4"]),
        ("deepseek_v3_fp8", &["h800", "apple-silicon", "pi5", "pi4"]),
    ];
    for (model, targets) in cases {
        for target in *targets {
            let out = dir.path().join(format!("{model}-{target}"));
            ok(&export(model, target, &out, &[]));
            let o = wharf(&["verify", out.to_str().unwrap(), "--json"], "2");
            ok(&o);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["ok"], true, "{model} {target}: {v}");
            assert_eq!(
                v["reference"]["greedy_as_recorded"], true,
                "{model} {target}"
            );
        }
    }
}

/// mistral_bf16's k/v projections have 64 rows: in DeepSeek's layout they are one partial
/// block, which vLLM cannot fuse into its q/k/v GEMM at any tensor-parallel size. The export is
/// refused naming the tensor and the scheme that works, and nothing is written.
#[test]
fn an_h800_bundle_vllm_cannot_load_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mistral-h800");
    let o = export("mistral_bf16", "h800", &out, &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("self_attn.k_proj.weight: merged output part 64"),
        "{err}"
    );
    assert!(err.contains("--scheme fp8-channel"), "{err}");
    assert!(!out.exists());
}

fn bundle_bytes(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    for e in fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        out.push((
            p.file_name().unwrap().to_string_lossy().into_owned(),
            fs::read(&p).unwrap(),
        ));
    }
    out.sort();
    out
}

#[test]
fn bundles_are_byte_identical_at_1_and_2_threads_zip_included() {
    let dir = tempfile::tempdir().unwrap();
    for target in ["pi5", "h800"] {
        // Same bundle name (RUN.md names it), two parent folders.
        let (a, b) = (
            dir.path().join("t1").join(target),
            dir.path().join("t2").join(target),
        );
        fs::create_dir_all(a.parent().unwrap()).unwrap();
        fs::create_dir_all(b.parent().unwrap()).unwrap();
        let src = fixture("deepseek_v3");
        let args = |out: &Path| {
            vec![
                "export".to_owned(),
                src.to_str().unwrap().to_owned(),
                "--target".into(),
                target.into(),
                "-o".into(),
                out.to_str().unwrap().to_owned(),
            ]
        };
        let run = |out: &Path, threads: &str, zip: bool| {
            let mut v = args(out);
            if zip {
                v.push("--zip".into());
            }
            let v: Vec<&str> = v.iter().map(String::as_str).collect();
            ok(&wharf(&v, threads));
        };
        run(&a, "1", false);
        run(&b, "2", false);
        assert_eq!(bundle_bytes(&a), bundle_bytes(&b), "{target}");
        let (za, zb) = (a.with_extension("zip"), b.with_extension("zip"));
        run(&za, "1", true);
        run(&zb, "2", true);
        assert_eq!(
            fs::read(&za).unwrap(),
            fs::read(&zb).unwrap(),
            "{target} zip"
        );
    }
}

type Tamper = fn(&Path) -> String;

fn model_file(dir: &Path) -> String {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".gguf"))
        .unwrap()
}

const TAMPERS: &[(&str, Tamper)] = &[
    ("flip a bit", |d| {
        let name = model_file(d);
        let p = d.join(&name);
        let mut b = fs::read(&p).unwrap();
        let i = b.len() / 2;
        b[i] ^= 0x10;
        fs::write(&p, b).unwrap();
        name
    }),
    ("append a byte", |d| {
        let p = d.join("RUN.md");
        let mut b = fs::read(&p).unwrap();
        b.push(b' ');
        fs::write(&p, b).unwrap();
        "RUN.md".into()
    }),
    ("add a file", |d| {
        fs::write(d.join("notes.txt"), b"hi").unwrap();
        "notes.txt".into()
    }),
    ("remove a file", |d| {
        fs::remove_file(d.join("reference.json")).unwrap();
        "reference.json".into()
    }),
    ("rename a file", |d| {
        let name = model_file(d);
        fs::rename(d.join(&name), d.join("renamed.gguf")).unwrap();
        name
    }),
    ("symlink", |d| {
        let p = d.join("RUN.md");
        let target = d.parent().unwrap().join(format!(
            "{}-RUN.md",
            d.file_name().unwrap().to_string_lossy()
        ));
        fs::rename(&p, &target).unwrap();
        std::os::unix::fs::symlink(&target, &p).unwrap();
        "RUN.md".into()
    }),
    ("../ in the manifest", |d| {
        let p = d.join("manifest.json");
        let text = fs::read_to_string(&p).unwrap();
        fs::write(&p, text.replacen("\"RUN.md\"", "\"../x\"", 1)).unwrap();
        "../x".into()
    }),
];

#[test]
fn every_tampering_fails_verify_naming_the_file_for_folders_and_zips() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    ok(&export("llama", "pi4", &pristine, &[]));
    for (i, (what, tamper)) in TAMPERS.iter().enumerate() {
        let b = dir.path().join(format!("b{i}"));
        copy_dir(&pristine, &b);
        let name = tamper(&b);
        let o = wharf(&["verify", b.to_str().unwrap()], "2");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_ne!(o.status.code(), Some(0), "{what}: {all}");
        assert!(all.contains(&name), "{what}: `{name}` not named in {all}");
        // The same bundle, zipped (symlinks as symlink entries), fails too.
        if what.starts_with("../") {
            continue;
        }
        let z = dir.path().join(format!("b{i}.zip"));
        zip_dir(&b, &z);
        let o = wharf(&["verify", z.to_str().unwrap()], "2");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(1), "{what} (zip): {all}");
        assert!(
            all.contains(&name),
            "{what} (zip): `{name}` not named in {all}"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

fn zip_dir(dir: &Path, out: &Path) {
    use zip::write::SimpleFileOptions;
    let mut z = zip::ZipWriter::new(fs::File::create(out).unwrap());
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        let p = dir.join(&n);
        if fs::symlink_metadata(&p).unwrap().file_type().is_symlink() {
            let t = fs::read_link(&p).unwrap();
            z.add_symlink(
                n.as_str(),
                t.to_string_lossy(),
                SimpleFileOptions::default(),
            )
            .unwrap();
        } else {
            z.start_file(n.as_str(), SimpleFileOptions::default())
                .unwrap();
            std::io::copy(&mut fs::File::open(&p).unwrap(), &mut z).unwrap();
        }
    }
    z.finish().unwrap();
}

#[test]
fn an_exported_zip_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let z = dir.path().join("llama-pi5.zip");
    ok(&export("llama", "pi5", &z, &["--zip"]));
    ok(&wharf(&["verify", z.to_str().unwrap()], "2"));
    // Only the zip is left behind: no staging folder.
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1);
}

#[test]
fn preflight_refuses_a_board_too_small_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let o = export("llama", "pi4", &out, &["--memory", "64MB"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("preflight") && err.contains("pi4"), "{err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_scheme_that_does_not_fit_the_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = export("llama", "pi4", &dir.path().join("b"), &["--scheme", "mlx4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("gguf:Q4_0"));
}

#[test]
fn targets_lists_every_profile_as_json() {
    let o = wharf(&["targets", "--json"], "2");
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["h800", "apple-silicon", "pi5", "pi4"]);
}

#[test]
fn mlx_deepseek_layout_runs_as_the_source_does() {
    // mlx-lm stacks experts (`switch_mlp`) and splits kv_b_proj into embed_q / unembed_out;
    // the reference reads them back under HF names. At 8 bits the model must stay within
    // quantization noise of the source (a transposed head would give KL of order 1).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds-mlx8");
    let src = fixture("deepseek_v3");
    ok(&wharf(
        &[
            "quantize",
            src.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--scheme",
            "mlx8",
        ],
        "2",
    ));
    let ids = "0,17,345,902,5,1000,77,256,511,3,640,129,888,42,700,13";
    let o = wharf(
        &[
            "compare",
            src.to_str().unwrap(),
            out.to_str().unwrap(),
            "--ids",
            ids,
            "--json",
        ],
        "2",
    );
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kl = v["kl_mean"]
        .as_f64()
        .or_else(|| v["kl"]["mean"].as_f64())
        .unwrap_or(f64::NAN);
    assert!(kl < 1e-3, "{v}");
}

#[test]
fn inspect_describes_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    ok(&export("llama", "pi5", &out, &[]));
    let o = wharf(&["inspect", out.to_str().unwrap(), "--json"], "2");
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "gguf");
    assert_eq!(v["bundle"]["target"], "pi5");
    assert_eq!(v["bundle"]["scheme"], "gguf:Q4_K_M");
}

#[test]
fn export_takes_a_text_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    ok(&export(
        "mistral_bf16",
        "pi4",
        &out,
        &["--prompt", "The quick brown fox"],
    ));
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    // ids from the SentencePiece library for this text (tests/data/vectors/tokenizer).
    assert_eq!(
        m["reference"]["prompt_ids"],
        serde_json::json!([
            1, 477, 941, 434, 274, 971, 296, 297, 961, 947, 286, 944, 981
        ])
    );
    ok(&wharf(&["verify", out.to_str().unwrap()], "2"));
}
