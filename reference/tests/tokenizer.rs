//! A tokenizer rebuilt from GGUF `tokenizer.ggml.*` gives the same ids as the model's own
//! `tokenizer.json`.

use std::path::{Path, PathBuf};

use wharf_converters::AnySource;
use wharf_converters::hf::{GgufOptions, HfToGguf, OutType};
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

/// `models/<model>` converted by wharf to an F32 GGUF at `out`.
fn convert_to_gguf(model: &str, out: &Path) {
    let dir = data().join("models").join(model);
    let src = AnySource::open(&dir).unwrap();
    let opts = GgufOptions {
        out: OutType::F32,
        pre: None,
    };
    HfToGguf::new(&src, &opts)
        .unwrap()
        .write(out, None, &mut |_| {})
        .unwrap();
}

#[test]
fn wharf_converted_qwen2_vocab_matches_tokenizer_json() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q.gguf");
    convert_to_gguf("qwen2", &out);
    same_ids(
        &Tokenizer::open(&out).unwrap(),
        &Tokenizer::open(&data().join("models/qwen2")).unwrap(),
    );
}

#[test]
fn folders_without_a_tokenizer_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        data().join("models/llama/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        data().join("models/llama/model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let e = Tokenizer::open(dir.path()).unwrap_err();
    assert!(matches!(e, wharf_reference::Error::Tokenizer(_)));
}

#[test]
fn sentencepiece_vocabularies_encode_like_the_sentencepiece_library() {
    // Ids from the SentencePiece library itself (xtask/scripts/gen_spm_vectors.py).
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data().join("../vectors/tokenizer/mistral_bf16_spm.json")).unwrap(),
    )
    .unwrap();
    let model = data().join("models/mistral_bf16");
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("m.gguf");
    convert_to_gguf("mistral_bf16", &gguf);
    let from_model = Tokenizer::open(&model).unwrap();
    let from_gguf = Tokenizer::open(&gguf).unwrap();
    for case in v["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            from_model.encode(text).unwrap(),
            want,
            "tokenizer.model: {text:?}"
        );
        // A GGUF keeps no normalization rule (llama.cpp applies none beyond the dummy
        // prefix), so it agrees with SentencePiece where this model's rule changes nothing.
        let plain = text.split_whitespace().collect::<Vec<_>>().join(" ") == text;
        if plain {
            assert_eq!(
                from_gguf.encode(text).unwrap(),
                want,
                "GGUF llama vocab: {text:?}"
            );
        }
    }
}
