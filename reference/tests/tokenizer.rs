//! A tokenizer rebuilt from GGUF `tokenizer.ggml.*` gives the same ids as the model's own
//! `tokenizer.json`.

use std::path::{Path, PathBuf};

use wharf_converters::gguf::GgufWriter;
use wharf_converters::hf::{GgufOptions, OutType, plan_gguf};
use wharf_converters::{AnySource, pipeline};
use wharf_reference::Tokenizer;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures")
}

const TEXTS: [&str; 7] = [
    "Hello world",
    " the quick brown fox jumps over the lazy dog.",
    "Numbers 12345 and 3.14159, symbols #@!? and  double  spaces\n\nnewlines\ttabs",
    "don't won't I'll we're they've",
    "Ünïcödé café — 東京 😀",
    "<|begin_of_text|>special in text",
    "",
];

fn same_ids(gguf: &Tokenizer, json: &Tokenizer) {
    for t in TEXTS {
        assert_eq!(gguf.encode(t).unwrap(), json.encode(t).unwrap(), "{t:?}");
    }
}

#[test]
fn llamacpp_gguf_vocab_matches_tokenizer_json() {
    let gguf = Tokenizer::open(&data().join("reference/gguf/llama-llamacpp-Q4_0.gguf")).unwrap();
    let json = Tokenizer::open(&data().join("models/llama")).unwrap();
    same_ids(&gguf, &json);
    // The HF post-processor and GGUF add_bos_token both start with <|begin_of_text|>.
    assert_eq!(json.encode("Hello").unwrap().first(), Some(&0));
    let ids = json.encode("Hello world").unwrap();
    assert_eq!(gguf.decode(&ids).unwrap(), json.decode(&ids).unwrap());
}

#[test]
fn wharf_converted_qwen2_vocab_matches_tokenizer_json() {
    let dir = data().join("models/qwen2");
    let src = AnySource::open(&dir).unwrap();
    let AnySource::Safetensors {
        source,
        config: Some((config, spec)),
        ..
    } = &src
    else {
        panic!("HF folder")
    };
    let opts = GgufOptions {
        out: OutType::F32,
        pre: None,
    };
    let plan = plan_gguf(source, &dir, config, spec, &opts).unwrap();
    let metas: Vec<_> = plan.tensors.iter().map(|p| p.meta.clone()).collect();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q.gguf");
    let mut w = GgufWriter::create(&out, &plan.kvs, &metas, None).unwrap();
    pipeline::run(source, &plan.tensors, &mut w, &mut |_| {}).unwrap();
    w.commit().unwrap();
    same_ids(
        &Tokenizer::open(&out).unwrap(),
        &Tokenizer::open(&dir).unwrap(),
    );
}

#[test]
fn unsupported_vocabularies_are_errors() {
    let e = Tokenizer::open(&data().join("models/mistral_bf16")).unwrap_err();
    assert!(matches!(e, wharf_reference::Error::Tokenizer(_)));
}
