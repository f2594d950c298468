//! The overlapped runner on small in-memory sources: bytes in plan order whatever was raw,
//! cast or encoded, and errors on either side that name their tensor and stop both threads.

use std::borrow::Cow;

use wharf_core::{DType, TensorMeta, TensorSink, TensorSource};

use super::{Planned, run_with};

/// Tensors in memory.
struct Mem {
    items: Vec<(TensorMeta, Vec<u8>)>,
    metas: Vec<TensorMeta>,
}

impl Mem {
    fn new(items: Vec<(&str, Vec<f32>)>) -> Self {
        let items: Vec<_> = items
            .into_iter()
            .map(|(n, v)| {
                (
                    TensorMeta::new(n, DType::F32, vec![v.len() as u64]),
                    f32_bytes(&v),
                )
            })
            .collect();
        let metas = items.iter().map(|(m, _)| m.clone()).collect();
        Mem { items, metas }
    }
}

impl TensorSource for Mem {
    fn tensors(&self) -> &[TensorMeta] {
        &self.metas
    }
    fn bytes(&self, name: &str) -> wharf_core::Result<Cow<'_, [u8]>> {
        let found = self.items.iter().find(|(m, _)| m.name == name);
        let (_, b) = found.ok_or_else(|| wharf_core::Error::TensorNotFound {
            name: name.to_owned(),
        })?;
        Ok(Cow::Borrowed(b))
    }
}

/// Records every write; fails on the tensor named `fail`.
#[derive(Default)]
struct Record {
    writes: Vec<(String, Vec<u8>)>,
    fail: Option<&'static str>,
}

impl TensorSink for Record {
    fn write(&mut self, name: &str, chunk: &[u8]) -> wharf_core::Result<()> {
        if self.fail == Some(name) {
            return Err(wharf_core::Error::format(std::io::Error::other(
                "disk full",
            )));
        }
        self.writes.push((name.to_owned(), chunk.to_vec()));
        Ok(())
    }
    fn finish(self: Box<Self>) -> wharf_core::Result<()> {
        Ok(())
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn source() -> Mem {
    let a: Vec<f32> = (0..3000).map(|i| i as f32 * 0.25 - 7.0).collect();
    Mem::new(vec![
        ("a", a),
        ("b", vec![1.0, -2.0, 3.5]),
        ("c", vec![4.0; 10]),
    ])
}

/// `a` raw, `a` cast to BF16, `b` doubled, `c` claimed by the encoder (U8: one byte a value).
fn plan() -> Vec<Planned> {
    let m = |n: &str, d, len: u64| TensorMeta::new(n, d, vec![len]);
    let mut doubled = Planned::simple(m("b2", DType::F32, 3), "b");
    doubled.transform = Some(Box::new(|v: &[f32]| v.iter().map(|x| x * 2.0).collect()));
    vec![
        Planned::simple(m("a", DType::F32, 3000), "a"),
        Planned::simple(m("a16", DType::BF16, 3000), "a"),
        doubled,
        Planned::simple(m("c8", DType::U8, 10), "c"),
    ]
}

type EncodeResult = Result<(), String>;

fn encoder(
    meta: &TensorMeta,
    _rows: std::ops::Range<usize>,
    v: &[f32],
    out: &mut [u8],
) -> EncodeResult {
    if meta.name == "bad" {
        return Err("cannot".into());
    }
    out.iter_mut().zip(v).for_each(|(o, x)| *o = *x as u8 + 1);
    Ok(())
}

/// What a tensor-after-tensor run writes, per output tensor.
fn expected(src: &Mem) -> Vec<(String, Vec<u8>)> {
    let a = src.bytes("a").unwrap().into_owned();
    let a16: Vec<u8> = a
        .chunks(4)
        .flat_map(|c| {
            let x = f32::from_le_bytes(c.try_into().unwrap());
            wharf_core::cast::f32_to_bf16_bits(x).to_le_bytes()
        })
        .collect();
    vec![
        ("a".into(), a),
        ("a16".into(), a16),
        ("b2".into(), f32_bytes(&[2.0, -4.0, 7.0])),
        ("c8".into(), vec![5; 10]),
    ]
}

/// Writes joined per tensor, in the order they arrived.
fn joined(writes: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, chunk) in writes {
        match out.last_mut() {
            Some((n, b)) if n == name => b.extend_from_slice(chunk),
            _ => out.push((name.clone(), chunk.clone())),
        }
    }
    out
}

#[test]
fn bytes_arrive_in_plan_order_and_progress_follows() {
    let src = source();
    let mut sink = Record::default();
    let mut seen = Vec::new();
    let plan = plan();
    let enc = encoder;
    run_with(&src, &plan, &mut sink, &mut |i| seen.push(i), Some(&enc)).unwrap();
    assert_eq!(joined(&sink.writes), expected(&src));
    assert_eq!(seen, vec![0, 1, 2, 3]);
}

#[test]
fn a_failing_tensor_is_named_and_nothing_after_it_is_written() {
    let src = source();
    let mut plan = plan();
    plan.insert(
        2,
        Planned::simple(TensorMeta::new("bad", DType::U8, vec![3]), "b"),
    );
    let mut sink = Record::default();
    let enc = encoder;
    let err = run_with(&src, &plan, &mut sink, &mut |_| {}, Some(&enc)).unwrap_err();
    assert_eq!(err.tensor(), Some("bad"));
    let names: Vec<_> = joined(&sink.writes).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "a16"]);
}

#[test]
fn a_failing_sink_is_named_and_stops_the_maker() {
    let src = source();
    let plan = plan();
    let mut sink = Record {
        fail: Some("a16"),
        ..Record::default()
    };
    let enc = encoder;
    let err = run_with(&src, &plan, &mut sink, &mut |_| {}, Some(&enc)).unwrap_err();
    assert_eq!(err.tensor(), Some("a16"));
    assert!(err.to_string().contains("disk full"), "{err}");
    let names: Vec<_> = joined(&sink.writes).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a"]);
}

#[test]
fn a_missing_source_is_named() {
    let src = source();
    let plan = vec![Planned::simple(
        TensorMeta::new("x", DType::F32, vec![3]),
        "nope",
    )];
    let err = super::run(&src, &plan, &mut Record::default(), &mut |_| {}).unwrap_err();
    assert_eq!(err.tensor(), Some("nope"));
}
