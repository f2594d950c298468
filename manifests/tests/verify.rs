//! Bundle verification: every tampering of RELIABILITY.md F8/F9 fails and names the file,
//! for folders and zips; zips are byte-reproducible.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::json;
use wharf_manifests::{
    FileEntry, FileStatus, Manifest, Metrics, Recipe, Reference, SCHEMA, Source, Thresholds, Tool,
    hash_file, verify_dir, verify_zip, zip,
};

const FILES: &[(&str, &[u8])] = &[
    ("model.gguf", b"GGUF pretend weights"),
    ("reference.json", b"{\"golden\":true}"),
    ("sub/tokenizer.json", b"{}"),
];

fn manifest(dir: &Path) -> Manifest {
    let files = FILES
        .iter()
        .map(|(name, _)| {
            let d = hash_file(&dir.join(name)).unwrap();
            FileEntry {
                path: (*name).to_owned(),
                sha256: d.sha256,
                bytes: d.bytes,
            }
        })
        .collect();
    Manifest {
        schema: SCHEMA.into(),
        tool: Tool {
            name: "wharf".into(),
            version: "0.1.0".into(),
        },
        created: None,
        target: json!({"name": "pi5"}),
        source: Source {
            name: "llama".into(),
            format: "hf-safetensors".into(),
            files: vec![],
        },
        architecture: json!({"name": "llama"}),
        recipe: Recipe {
            scheme: "gguf:Q4_K_M".into(),
            options: BTreeMap::new(),
            tensors: BTreeMap::new(),
        },
        files,
        reference: Reference {
            model: "model.gguf".into(),
            golden: "reference.json".into(),
            prompt_ids: vec![1, 2, 3],
            thresholds: Thresholds {
                min_top1: 0.9,
                decisive_margin: 1.0,
                max_mean_kl: 0.1,
                max_kl: 1.0,
            },
            metrics: Metrics {
                top1: 1.0,
                top1_decisive: 1.0,
                decisive_positions: 0,
                mean_kl: 0.0,
                max_kl: 0.0,
                greedy: vec![4, 5],
                greedy_agreement: 1.0,
                passed: true,
            },
        },
    }
}

fn bundle() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in FILES {
        let p = dir.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    let m = manifest(dir.path());
    fs::write(dir.path().join("manifest.json"), m.to_bytes()).unwrap();
    dir
}

fn zip_of(dir: &Path, out: &Path) {
    let mut names: Vec<String> = FILES.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.push("manifest.json".into());
    zip::write_zip(fs::File::create(out).unwrap(), dir, &names).unwrap();
}

fn failing(report: &wharf_manifests::HashReport) -> Vec<(String, FileStatus)> {
    report
        .failures()
        .map(|f| (f.path.clone(), f.status.clone()))
        .collect()
}

#[test]
fn intact_bundle_passes_and_manifest_round_trips() {
    let b = bundle();
    let (m, report) = verify_dir(b.path()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.files.len(), FILES.len());
    assert_eq!(m, manifest(b.path()));
    assert_eq!(
        Manifest::parse(&m.to_bytes(), Path::new("m"))
            .unwrap()
            .to_bytes(),
        m.to_bytes()
    );
}

type Tamper = fn(&Path) -> &'static str;

const TAMPERS: &[(&str, Tamper)] = &[
    ("flip one bit", |d| {
        let p = d.join("model.gguf");
        let mut b = fs::read(&p).unwrap();
        b[3] ^= 1;
        fs::write(p, b).unwrap();
        "model.gguf"
    }),
    ("append a byte", |d| {
        let p = d.join("sub/tokenizer.json");
        let mut b = fs::read(&p).unwrap();
        b.push(b'\n');
        fs::write(p, b).unwrap();
        "sub/tokenizer.json"
    }),
    ("add a file", |d| {
        fs::write(d.join("extra.bin"), b"x").unwrap();
        "extra.bin"
    }),
    ("remove a file", |d| {
        fs::remove_file(d.join("reference.json")).unwrap();
        "reference.json"
    }),
    ("rename a file", |d| {
        fs::rename(d.join("model.gguf"), d.join("model2.gguf")).unwrap();
        "model.gguf"
    }),
    ("replace with a symlink", |d| {
        let p = d.join("model.gguf");
        let copy = d.parent().unwrap().join(format!(
            "outside-{}",
            d.file_name().unwrap().to_string_lossy()
        ));
        fs::rename(&p, &copy).unwrap();
        std::os::unix::fs::symlink(&copy, &p).unwrap();
        "model.gguf"
    }),
];

#[test]
fn every_tampering_of_a_folder_fails_naming_the_file() {
    for (what, tamper) in TAMPERS {
        let b = bundle();
        let name = tamper(b.path());
        let (_, report) = verify_dir(b.path()).unwrap();
        let bad = failing(&report);
        assert!(
            bad.iter().any(|(p, _)| p == name),
            "{what}: {name} not reported in {bad:?}"
        );
    }
}

#[test]
fn every_tampering_of_a_zip_fails_naming_the_file() {
    for (what, tamper) in TAMPERS {
        let b = bundle();
        let name = tamper(b.path());
        let zip_path = b.path().with_extension("zip");
        // Zip whatever the tampered folder now holds; symlinks become symlink entries.
        let mut names = vec![];
        for entry in walk(b.path()) {
            names.push(entry);
        }
        write_zip_with_links(b.path(), &names, &zip_path);
        let (_, report) = verify_zip(&zip_path).unwrap();
        let bad = failing(&report);
        assert!(
            bad.iter().any(|(p, _)| p == name),
            "{what}: {name} not reported in {bad:?}"
        );
        fs::remove_file(zip_path).unwrap();
    }
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_owned();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn write_zip_with_links(dir: &Path, names: &[String], out: &Path) {
    use ::zip::write::SimpleFileOptions;
    let mut z = ::zip::ZipWriter::new(fs::File::create(out).unwrap());
    for n in names {
        let p = dir.join(n);
        if fs::symlink_metadata(&p).unwrap().file_type().is_symlink() {
            z.add_symlink(
                n.as_str(),
                fs::read_link(&p).unwrap().to_string_lossy(),
                SimpleFileOptions::default(),
            )
            .unwrap();
        } else {
            z.start_file(n.as_str(), SimpleFileOptions::default())
                .unwrap();
            std::io::copy(&mut fs::File::open(p).unwrap(), &mut z).unwrap();
        }
    }
    z.finish().unwrap();
}

#[test]
fn escaping_names_in_the_manifest_are_refused() {
    for bad in ["../x", "/etc/passwd", "a/../../x", "a\\b"] {
        let b = bundle();
        let mut m = manifest(b.path());
        m.files[0].path = bad.into();
        fs::write(b.path().join("manifest.json"), m.to_bytes()).unwrap();
        let err = verify_dir(b.path()).unwrap_err();
        assert!(err.to_string().contains(bad), "{bad}: {err}");
    }
}

#[test]
fn malformed_manifests_are_refused() {
    let b = bundle();
    let good = fs::read_to_string(b.path().join("manifest.json")).unwrap();
    let cases = [
        good.replace(SCHEMA, "wharf.bundle/v0"),
        good.replacen("\"files\"", "\"unknown\": 1, \"files\"", 1),
        good.replacen("\"sha256\": \"", "\"sha256\": \"Z", 1),
        "{".to_owned(),
    ];
    for text in cases {
        fs::write(b.path().join("manifest.json"), &text).unwrap();
        assert!(verify_dir(b.path()).is_err(), "accepted: {text}");
    }
}

#[test]
fn zips_are_byte_reproducible_and_verify() {
    let a = bundle();
    let b = bundle();
    let (za, zb) = (a.path().join("../a.zip"), b.path().join("../b.zip"));
    zip_of(a.path(), &za);
    zip_of(b.path(), &zb);
    assert_eq!(fs::read(&za).unwrap(), fs::read(&zb).unwrap());
    let (_, report) = verify_zip(&za).unwrap();
    assert!(report.ok(), "{report:?}");
    let out = tempfile::tempdir().unwrap();
    zip::extract(&za, out.path()).unwrap();
    let (_, report) = verify_dir(out.path()).unwrap();
    assert!(report.ok(), "{report:?}");
    fs::remove_file(za).unwrap();
    fs::remove_file(zb).unwrap();
}

#[test]
fn zip_with_a_duplicate_entry_is_refused() {
    let b = bundle();
    let zp = b.path().join("../dup.zip");
    // Two central-directory entries with one name (RELIABILITY.md Z3): the zip writer refuses
    // duplicates, so write two names and patch the second into the first.
    let bytes = {
        let mut z = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        z.start_file("manifest.json", ::zip::write::SimpleFileOptions::default())
            .unwrap();
        z.start_file("manifesu.json", ::zip::write::SimpleFileOptions::default())
            .unwrap();
        z.finish().unwrap().into_inner()
    };
    let patched = replace_all(&bytes, b"manifesu.json", b"manifest.json");
    fs::write(&zp, patched).unwrap();
    let err = verify_zip(&zp).unwrap_err();
    assert!(err.to_string().contains("duplicate"), "{err}");
    fs::remove_file(zp).unwrap();
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = hay.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
    out
}

#[test]
fn fuzz_corpus_manifests_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/manifest");
    let mut seen = 0;
    for e in fs::read_dir(dir).unwrap() {
        let bytes = fs::read(e.unwrap().path()).unwrap();
        if let Ok(m) = Manifest::parse(&bytes, Path::new("m")) {
            let again = Manifest::parse(&m.to_bytes(), Path::new("m")).unwrap();
            assert_eq!(again.to_bytes(), m.to_bytes());
            seen += 1;
        }
    }
    assert!(seen > 0, "no manifest seed parsed");
}
