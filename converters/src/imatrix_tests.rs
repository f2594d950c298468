use super::*;

fn raw(name: &str, sums: &[f32], counts: &[f32]) -> RawEntry {
    RawEntry {
        name: name.into(),
        sums: sums.to_vec(),
        counts: counts.to_vec(),
    }
}

#[test]
fn gguf_sums_are_divided_by_the_rounded_count_of_their_expert() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    let entries = [
        raw("blk.0.attn_q.weight", &[2.0, 4.0, 6.0], &[1.6]),
        // Three experts: the second saw no tokens (1.0), the third 2.4 rounds to 2.
        raw(
            "blk.0.ffn_down_exps.weight",
            &[3.0, 9.0, 5.0, 5.0, 8.0, 2.0],
            &[3.0, 0.0, 2.4],
        ),
    ];
    write_gguf(&p, &entries, &["wiki.txt"], 7, 512).unwrap();
    let m = Imatrix::load(&p).unwrap();
    assert!(!m.legacy);
    assert_eq!(m.datasets, ["wiki.txt"]);
    assert_eq!(m.chunk_count, 7);
    assert_eq!(m.entries["blk.0.attn_q.weight"], [1.0, 2.0, 3.0]);
    assert_eq!(
        m.entries["blk.0.ffn_down_exps.weight"],
        [1.0, 3.0, 1.0, 1.0, 4.0, 1.0]
    );
}

#[test]
fn gguf_without_metadata_or_with_lone_sums_is_refused() {
    use wharf_core::{TensorMeta, TensorSink};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    let metas = [TensorMeta::new("a.weight.in_sum2", DType::F32, [1u64, 2])];
    let write = |kvs: &[(String, Value)]| {
        let mut w = crate::gguf::GgufWriter::create(&p, kvs, &metas, None).unwrap();
        w.write("a.weight.in_sum2", &[0u8; 8]).unwrap();
        w.commit().unwrap();
    };
    write(&[]);
    let e = Imatrix::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("missing imatrix metadata") && e.contains("m.gguf"),
        "{e}"
    );
    let kvs = [
        ("imatrix.datasets".into(), Value::strings(["d"])),
        ("imatrix.chunk_count".into(), Value::U32(1)),
        ("imatrix.chunk_size".into(), Value::U32(1)),
    ];
    write(&kvs);
    let e = Imatrix::load(&p).unwrap_err().to_string();
    assert!(e.contains("`a.weight`") && e.contains("mismatched"), "{e}");
}

#[test]
fn gguf_sums_that_do_not_split_into_experts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    assert!(write_gguf(&p, &[raw("x", &[1.0; 5], &[1.0, 1.0])], &[], 1, 1).is_err());
    assert!(write_gguf(&p, &[raw("x", &[1.0; 4], &[])], &[], 1, 1).is_err());
}

fn legacy(entries: &[(&str, i32, &[f32])], tail: &[u8]) -> Vec<u8> {
    let mut b = (entries.len() as i32).to_le_bytes().to_vec();
    for (name, ncall, vals) in entries {
        b.extend((name.len() as i32).to_le_bytes());
        b.extend(name.as_bytes());
        b.extend(ncall.to_le_bytes());
        b.extend((vals.len() as i32).to_le_bytes());
        vals.iter().for_each(|v| b.extend(v.to_le_bytes()));
    }
    b.extend(tail);
    b
}

#[test]
fn legacy_sums_are_divided_by_ncall_and_the_tail_is_read() {
    let mut tail = 12i32.to_le_bytes().to_vec();
    tail.extend(4i32.to_le_bytes());
    tail.extend(b"wiki");
    let b = legacy(&[("a", 2, &[2.0, 5.0]), ("b", 0, &[3.0])], &tail);
    let m = from_legacy(&b).unwrap();
    assert!(m.legacy);
    assert_eq!(m.entries["a"], [1.0, 2.5]);
    assert_eq!(m.entries["b"], [3.0]);
    assert_eq!(
        (m.chunk_count, m.datasets.as_slice()),
        (12, &["wiki".to_owned()][..])
    );
    // No tail at all is fine too.
    assert_eq!(
        from_legacy(&legacy(&[("a", 1, &[1.0])], &[]))
            .unwrap()
            .chunk_count,
        0
    );
}

#[test]
fn legacy_files_that_lie_are_refused() {
    let good = legacy(&[("a", 1, &[1.0, 2.0])], &[]);
    for cut in 0..good.len() {
        assert!(from_legacy(&good[..cut]).is_err(), "cut at {cut}");
    }
    let mut huge = good.clone();
    huge[0..4].copy_from_slice(&i32::MAX.to_le_bytes());
    assert!(from_legacy(&huge).is_err());
    let mut neg_len = good.clone();
    neg_len[4..8].copy_from_slice(&(-5i32).to_le_bytes());
    assert!(from_legacy(&neg_len).is_err());
    let dup = legacy(&[("a", 1, &[1.0]), ("a", 1, &[1.0])], &[]);
    assert!(matches!(
        from_legacy(&dup).unwrap_err().kind(),
        ErrorKind::Duplicate { .. }
    ));
    let trailing = legacy(&[("a", 1, &[1.0])], &[1, 0, 0, 0, 0, 0, 0, 0, 9]);
    assert!(from_legacy(&trailing).is_err());
}

#[test]
fn non_finite_importances_are_refused_with_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.dat");
    std::fs::write(&p, legacy(&[("blk.1.x", 1, &[f32::NAN])], &[])).unwrap();
    let e = Imatrix::load(&p).unwrap_err().to_string();
    assert!(e.contains("blk.1.x") && e.contains("m.dat"), "{e}");
}
