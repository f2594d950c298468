//! A folder of several shards lists every file once: the index of an MLX folder is mlx-lm's
//! (with `total_parameters`) and is written once, not also by the shard writer (a bundle's
//! manifest then listed it twice and `verify` refused it).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use wharf_converters::AnySource;
use wharf_targets::folder::{self, FolderScheme};

#[test]
fn a_sharded_mlx_folder_writes_its_index_once() {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures/models/deepseek_v3");
    let src = AnySource::open(src).unwrap();
    let scheme = folder::parse_scheme("mlx4").unwrap().unwrap();
    assert!(matches!(scheme, FolderScheme::Mlx(_)));
    let job = folder::plan(&src, scheme)
        .unwrap()
        .with_shard_bytes(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let seen: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let count = |seen: &Arc<Mutex<BTreeMap<String, usize>>>, name: &str| {
        *seen.lock().unwrap().entry(name.to_owned()).or_default() += 1;
    };
    let taps = {
        let seen = Arc::clone(&seen);
        Box::new(move |name: &str| {
            count(&seen, name);
            Box::new(|_: &[u8]| {}) as wharf_converters::atomic::Tap
        }) as wharf_converters::safetensors::TapFactory
    };
    let mut small = |name: &str, bytes: &[u8]| {
        count(&seen, name);
        std::fs::write(dir.path().join(name), bytes).unwrap();
        Ok(())
    };
    job.write(dir.path(), Some(taps), &mut small, &mut |_| {})
        .unwrap();
    let seen = seen.lock().unwrap();
    let shards = seen.keys().filter(|k| k.ends_with(".safetensors")).count();
    assert!(shards > 1, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    let index = std::fs::read_to_string(dir.path().join("model.safetensors.index.json")).unwrap();
    assert!(index.contains("total_parameters"), "{index}");
}
