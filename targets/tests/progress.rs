//! The progress callback of the GGUF and folder writers: one step per output tensor, ending at
//! every tensor and every byte.

use std::path::{Path, PathBuf};

use wharf_converters::AnySource;
use wharf_quantizers::ggml::mix::{Mix, MixOptions};
use wharf_targets::{Step, folder, gguf};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures/models")
        .join(p)
}

fn check(steps: &[Step], metas: &[wharf_core::TensorMeta]) {
    let bytes: u64 = metas.iter().map(|m| m.nbytes().unwrap()).sum();
    assert_eq!(steps.len(), metas.len());
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(
            (s.tensors_done, s.tensors, s.bytes),
            (i + 1, metas.len(), bytes)
        );
    }
    assert!(steps.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done));
    assert_eq!(steps.last().unwrap().bytes_done, bytes);
}

#[test]
fn gguf_writes_report_every_tensor_and_byte() {
    let src = AnySource::open(fixture("llama")).unwrap();
    let job = gguf::plan(&src, Mix::Q4_K_M, &MixOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut steps = Vec::new();
    gguf::write(&src, &job, &dir.path().join("q.gguf"), None, &mut |s| {
        steps.push(s)
    })
    .unwrap();
    check(&steps, &job.metas());
}

#[test]
fn folder_writes_report_every_tensor_and_byte() {
    let src = AnySource::open(fixture("llama")).unwrap();
    let scheme = folder::parse_scheme("mlx4").unwrap().unwrap();
    let job = folder::plan(&src, scheme).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut steps = Vec::new();
    let small = &mut |n: &str, b: &[u8]| folder::write_file(&dir.path().join(n), b);
    job.write(dir.path(), None, small, &mut |s| steps.push(s))
        .unwrap();
    check(&steps, &job.metas());
}
