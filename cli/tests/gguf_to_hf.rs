//! GGUF → HF folder (the reverse mapping): a fixture converted to an F32 GGUF and back has every
//! tensor byte-identical to the original, the same model description, and a tokenizer.json that
//! encodes like the original.

use std::path::{Path, PathBuf};
use std::process::Command;

use wharf_converters::AnySource;
use wharf_core::TensorSource;

fn wharf(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures/models")
        .join(p)
}

#[test]
fn fixtures_come_back_from_gguf_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for m in ["llama", "llama_tied", "qwen2", "deepseek_v3"] {
        let gguf = dir.path().join(format!("{m}.gguf"));
        let back = dir.path().join(format!("{m}-hf"));
        let src = fixture(m);
        wharf(&[
            "convert",
            src.to_str().unwrap(),
            "-o",
            gguf.to_str().unwrap(),
            "--dtype",
            "f32",
        ]);
        wharf(&[
            "convert",
            gguf.to_str().unwrap(),
            "-o",
            back.to_str().unwrap(),
        ]);
        let (a, b) = (
            AnySource::open(&src).unwrap(),
            AnySource::open(&back).unwrap(),
        );
        assert_eq!(a.tensors().len(), b.tensors().len(), "{m}");
        for t in a.tensors() {
            assert_eq!(b.meta(&t.name), Some(t), "{m}: {}", t.name);
            assert_eq!(
                a.bytes(&t.name).unwrap(),
                b.bytes(&t.name).unwrap(),
                "{m}: {}",
                t.name
            );
        }
        // The description is the same; token ids come from the GGUF's tokenizer, which
        // llama.cpp's converter takes from tokenizer_config, not config.json.
        let (mut sa, mut sb) = (a.spec().unwrap().clone(), b.spec().unwrap().clone());
        (sa.bos_token_id, sa.eos_token_id) = (None, None);
        (sb.bos_token_id, sb.eos_token_id) = (None, None);
        assert_eq!(sa, sb, "{m}");
        let (ta, tb) = (
            wharf_reference::Tokenizer::open(&src).unwrap(),
            wharf_reference::Tokenizer::open(&back).unwrap(),
        );
        for text in ["Hello world", "  spaced   out\n", "naïve café 123"] {
            assert_eq!(
                ta.encode(text).unwrap(),
                tb.encode(text).unwrap(),
                "{m}: {text:?}"
            );
        }
    }
}
