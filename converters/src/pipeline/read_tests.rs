//! The direct reader on a real file: what it schedules, the bytes it hands over (at any
//! offset, to the file's last byte), and the errors it names.

use std::borrow::Cow;
use std::path::Path;
use std::sync::mpsc;

use wharf_core::{DType, Stored, TensorMeta, TensorSource};

use super::Planned;
use super::read;

/// BF16 tensors stored back to back in a file, from an odd offset.
struct Filed {
    metas: Vec<TensorMeta>,
    data: Vec<u8>,
    ranges: Vec<(u64, u64)>,
    stored: Vec<Option<Stored>>,
}

impl Filed {
    /// Tensors of `lens` BF16 values each; the file starts with `skip` bytes of padding.
    fn write(path: &Path, skip: usize, lens: &[u64]) -> Self {
        let mut data: Vec<u8> = (0..skip).map(|i| i as u8).collect();
        let (mut metas, mut ranges, mut stored) = (Vec::new(), Vec::new(), Vec::new());
        for (k, &n) in lens.iter().enumerate() {
            let at = data.len() as u64;
            data.extend((0..2 * n).map(|i| (i * 7 + k as u64 * 13) as u8));
            metas.push(TensorMeta::new(format!("t{k}"), DType::BF16, vec![n]));
            ranges.push((at, 2 * n));
            let identity = None;
            let path = path.to_path_buf();
            stored.push(Some(Stored {
                path,
                offset: at,
                len: 2 * n,
                identity,
            }));
        }
        std::fs::write(path, &data).unwrap();
        Filed {
            metas,
            data,
            ranges,
            stored,
        }
    }

    fn expect(&self, k: usize) -> &[u8] {
        let (at, len) = self.ranges[k];
        &self.data[at as usize..(at + len) as usize]
    }
}

impl TensorSource for Filed {
    fn tensors(&self) -> &[TensorMeta] {
        &self.metas
    }
    fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
        let k = self.metas.iter().position(|m| m.name == name).unwrap();
        Ok(Cow::Borrowed(self.expect(k)))
    }
    fn stored(&self, name: &str) -> Option<Stored> {
        let k = self.metas.iter().position(|m| m.name == name)?;
        self.stored[k].clone()
    }
}

fn planned(out: &str, dtype: DType, from: &[&str]) -> Planned {
    Planned {
        meta: TensorMeta::new(out, dtype, vec![1]),
        from: from.iter().map(|s| s.to_string()).collect(),
        transform: None,
    }
}

/// Reads every range on the reader thread and returns the results in order.
fn read_all(ranges: Vec<Stored>) -> Vec<Result<Vec<u8>, String>> {
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || read::run(ranges, tx));
    // Keep every buffer until the end: the reader must not wait for small ones.
    let held: Vec<_> = rx.iter().collect();
    reader.join().unwrap();
    held.iter()
        .map(|r| r.as_ref().map(|b| b.bytes().to_vec()))
        .map(|r| r.map_err(|e| e.to_string()))
        .collect()
}

#[test]
fn scheduled_are_the_single_bf16_sources_the_maker_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = Filed::write(&dir.path().join("m"), 3, &[10, 20, 30, 40]);
    src.metas.push(TensorMeta::new("f", DType::F32, vec![4]));
    src.stored.push(None);
    src.stored[3].as_mut().unwrap().len = 2; // does not match the tensor: not read here
    let plan = [
        planned("z", DType::Q8_0, &["t2"]), // the first decoded: left to the map
        planned("a", DType::Q8_0, &["t0"]), // decoded: read
        planned("a.scales", DType::F16, &["t0"]), // reuses t0's values
        planned("b", DType::BF16, &["t1"]), // raw copy: read through the map
        planned("c", DType::Q8_0, &["t1"]), // decoded, after a raw entry: read
        planned("d", DType::Q8_0, &["f"]),  // F32 source
        planned("e", DType::Q8_0, &["t1", "t2"]), // concatenated
        planned("g", DType::Q8_0, &["t3"]), // stored range does not match
        planned("h", DType::Q8_0, &["t2"]),
    ];
    let raw = [false, false, false, true, false, false, false, false, false];
    let offsets = |sizes| -> Vec<_> {
        let s = read::schedule(&src, &plan, &raw, sizes);
        s.into_iter().map(|s| s.map(|s| s.offset)).collect()
    };
    let at = |k: usize| Some(src.ranges[k].0);
    let n = None;
    assert_eq!(offsets(1..=80), [n, at(0), n, n, at(1), n, n, n, at(2)]);
    // Sizes outside the range go through the map: t0 has 20 bytes, t1 40, t2 60.
    assert_eq!(offsets(30..=50), [n, n, n, n, at(1), n, n, n, n]);
}

#[test]
fn every_range_arrives_whole_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // Unaligned starts, sizes around the block and read steps, the last ending the file at
    // an unaligned length.
    let lens = [1, 2047, 2048, 2049, 5 << 20, 9 << 20, 3, 12345];
    let src = Filed::write(&dir.path().join("m"), 4095, &lens);
    let ranges: Vec<_> = src.stored.iter().flatten().cloned().collect();
    let got = read_all(ranges.clone());
    assert_eq!(got.len(), lens.len());
    for (k, r) in got.iter().enumerate() {
        assert!(
            r.as_ref().unwrap().as_slice() == src.expect(k),
            "tensor {k}"
        );
    }
    // Reading the same ranges again, now with buffers coming back, gives the same bytes.
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || read::run(ranges, tx));
    for (k, b) in rx.iter().enumerate() {
        assert!(b.unwrap().bytes() == src.expect(k), "again, tensor {k}");
    }
    reader.join().unwrap();
}

#[test]
fn a_range_past_the_end_is_a_truncation_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    let src = Filed::write(&path, 0, &[100]);
    let mut s = src.stored[0].clone().unwrap();
    s.len += 10;
    let got = read_all(vec![s.clone(), s]);
    assert_eq!(got.len(), 1, "the reader stops at its first error");
    let e = got.into_iter().next().unwrap().unwrap_err();
    assert!(
        e.contains("truncated") && e.contains(path.to_str().unwrap()),
        "{e}"
    );
}

#[test]
fn a_file_replaced_since_it_was_opened_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    let src = Filed::write(&path, 0, &[100]);
    let mut s = src.stored[0].clone().unwrap();
    s.identity = Some((u64::MAX, u64::MAX));
    let e = read_all(vec![s]).remove(0).unwrap_err();
    assert!(e.contains("changed"), "{e}");
}

#[test]
fn a_maker_that_stops_ends_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let src = Filed::write(&dir.path().join("m"), 1, &[1 << 20; 8]);
    let ranges: Vec<_> = src.stored.iter().flatten().cloned().collect();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || read::run(ranges, tx));
    let first = rx.recv().unwrap().unwrap();
    assert!(first.bytes() == src.expect(0));
    drop(rx);
    reader.join().unwrap();
}

/// A source that does not say where its bytes are: everything goes through `bytes`.
struct Hidden<'a>(&'a dyn TensorSource);

impl TensorSource for Hidden<'_> {
    fn tensors(&self) -> &[TensorMeta] {
        self.0.tensors()
    }
    fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
        self.0.bytes(name)
    }
}

/// Every chunk written, concatenated per tensor in order.
#[derive(Default)]
struct Collect(Vec<(String, Vec<u8>)>);

impl wharf_core::TensorSink for Collect {
    fn write(&mut self, name: &str, chunk: &[u8]) -> wharf_core::Result<()> {
        match self.0.last_mut() {
            Some((n, b)) if n == name => b.extend_from_slice(chunk),
            _ => self.0.push((name.to_owned(), chunk.to_vec())),
        }
        Ok(())
    }
    fn finish(self: Box<Self>) -> wharf_core::Result<()> {
        Ok(())
    }
}

#[test]
fn a_bf16_model_read_directly_converts_as_through_the_map() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/fixtures/models/mistral_bf16/model.safetensors"
    );
    let src = crate::safetensors::SafetensorsSource::open_file(fixture).unwrap();
    // Every tensor widened to F32 (decoded, so read by the reader), then each again as it is
    // (raw, through the map).
    let mut plan = Vec::new();
    for m in src.tensors() {
        let wide = TensorMeta::new(
            format!("{}.f32", m.name),
            DType::F32,
            m.shape.dims().to_vec(),
        );
        plan.push(Planned::simple(wide, m.name.clone()));
        plan.push(Planned::simple(m.clone(), m.name.clone()));
    }
    let raw: Vec<bool> = plan.iter().map(|p| p.meta.dtype == DType::BF16).collect();
    let all = 1..=u64::MAX;
    let direct = read::schedule(&src, &plan, &raw, all.clone());
    assert!(direct.iter().filter(|s| s.is_some()).count() == src.tensors().len() - 1);
    let convert = |s: &dyn TensorSource| {
        let mut sink = Collect::default();
        super::overlap::run(
            s,
            &plan,
            &mut sink,
            &mut |_| {},
            None,
            all.clone(),
            super::make::SLICE_VALUES,
        )
        .unwrap();
        sink.0
    };
    let direct = convert(&src);
    assert!(direct == convert(&Hidden(&src)));
    assert_eq!(direct.len(), plan.len());
}
