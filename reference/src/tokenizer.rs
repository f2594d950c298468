//! Text → token ids for `--prompt`: an HF `tokenizer.json` through the `tokenizers` crate, or a
//! GGUF `tokenizer.ggml.*` BPE vocabulary rebuilt as the same kind of tokenizer.
//!
//! A GGUF `gpt2` vocabulary becomes a byte-level BPE: tokens and merges as stored, control and
//! user-defined tokens (`token_type` 3 and 4) as added tokens, and the pre-tokenizer regex that
//! `tokenizer.ggml.pre` names (llama.cpp `src/llama-vocab.cpp`, `LLAMA_VOCAB_PRE_TYPE_*`).
//! SentencePiece BPE vocabularies (`tokenizer.model`, GGUF `llama`) are rebuilt as transformers
//! converts them (`spm.rs`).

use std::path::Path;

use serde_json::{Value as Json, json};
use wharf_converters::gguf::{GgufFile, Value};
use wharf_converters::{Format, detect};

use crate::spm::{Spm, SpmNormalizer, SpmPiece};
use crate::{Error, Result};

/// llama.cpp's `LLAMA_VOCAB_PRE_TYPE_LLAMA3` split regex.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// llama.cpp's `LLAMA_VOCAB_PRE_TYPE_QWEN2` split regex (digits one at a time).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The implementation behind a [`Tokenizer`].
#[derive(Debug, Clone)]
enum Inner {
    /// `tokenizer.json` (or a GGUF gpt2 vocabulary rebuilt as one).
    Hf(Box<tokenizers::Tokenizer>),
    /// SentencePiece BPE.
    Spm(Box<Spm>),
}

/// A model's tokenizer.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: Inner,
    /// Prepended by [`Tokenizer::encode`] (GGUF `add_bos_token`; HF folders do this in their
    /// post-processor instead).
    bos: Option<u32>,
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// From an HF folder (its `tokenizer.json`), a `tokenizer.json` file, or a GGUF file.
    pub fn open(path: &Path) -> Result<Tokenizer> {
        match detect(path)? {
            Format::Gguf => Tokenizer::from_gguf(&GgufFile::open(path)?),
            Format::HfFolder | Format::HfTorchFolder => {
                let file = path.join("tokenizer.json");
                if file.is_file() {
                    return Tokenizer::from_json_file(&file);
                }
                if path.join("tokenizer.model").is_file() {
                    return Tokenizer::from_spm_folder(path);
                }
                Err(Error::Tokenizer(format!(
                    "{} has neither tokenizer.json nor tokenizer.model",
                    path.display()
                )))
            }
            // A single weights file: its folder's tokenizer.json.
            Format::Safetensors | Format::Torch | Format::Onnx => {
                let dir = path.parent().unwrap_or(Path::new("."));
                Tokenizer::from_json_file(&dir.join("tokenizer.json"))
            }
        }
    }

    /// From a `tokenizer.json` file.
    pub fn from_json_file(path: &Path) -> Result<Tokenizer> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Tokenizer {
            inner: Inner::Hf(Box::new(inner)),
            bos: None,
        })
    }

    /// From a folder's SentencePiece `tokenizer.model` (and `tokenizer_config.json` for
    /// `add_bos_token` and `bos_token`, defaults true and `<s>` as in `LlamaTokenizer`).
    pub fn from_spm_folder(dir: &Path) -> Result<Tokenizer> {
        let model = dir.join("tokenizer.model");
        let bytes =
            std::fs::read(&model).map_err(|e| tok_err(format!("{}: {e}", model.display())))?;
        let pieces: Vec<SpmPiece> = wharf_converters::hf::parse_pieces(&bytes)
            .map_err(|e| tok_err(format!("{}: {e}", model.display())))?
            .into_iter()
            .map(|p| SpmPiece {
                text: p.piece,
                score: p.score,
                kind: p.kind,
            })
            .collect();
        let cfg: Json = std::fs::read(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Json::Null);
        let add_bos = cfg
            .get("add_bos_token")
            .and_then(Json::as_bool)
            .unwrap_or(true);
        let bos_text = cfg.get("bos_token").and_then(Json::as_str).unwrap_or("<s>");
        let bos = pieces
            .iter()
            .position(|p| p.text == bos_text)
            .and_then(|i| u32::try_from(i).ok())
            .filter(|_| add_bos);
        let n = wharf_converters::hf::parse_normalizer(&bytes)
            .map_err(|e| tok_err(format!("{}: {e}", model.display())))?;
        let norm = SpmNormalizer {
            charsmap: n.charsmap,
            remove_extra_whitespaces: n.remove_extra_whitespaces,
            add_dummy_prefix: n.add_dummy_prefix,
        };
        Tokenizer::from_spm(&pieces, bos, &norm)
    }

    fn from_spm(pieces: &[SpmPiece], bos: Option<u32>, norm: &SpmNormalizer) -> Result<Tokenizer> {
        Ok(Tokenizer {
            inner: Inner::Spm(Box::new(Spm::new(pieces.to_vec(), norm)?)),
            bos,
        })
    }

    /// From a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        let model = file.get("tokenizer.ggml.model").and_then(Value::as_str);
        if model == Some("llama") {
            return Tokenizer::from_gguf_spm(file);
        }
        if model != Some("gpt2") {
            return Err(Error::Tokenizer(format!(
                "GGUF tokenizer model {model:?} is not supported (only gpt2 BPE)"
            )));
        }
        let strings = |key: &str| -> Result<Vec<String>> {
            let arr = file
                .get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| Error::Tokenizer(format!("GGUF has no {key}")))?;
            arr.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| tok_err(format!("{key}: not a string")))
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<u64> = file
            .get("tokenizer.ggml.token_type")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
            .unwrap_or_default();
        let pre = file
            .get("tokenizer.ggml.pre")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let json = bpe_json(&tokens, &merges, &types, pre)?;
        let inner =
            tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes()).map_err(tok_err)?;
        let add_bos = file
            .get("tokenizer.ggml.add_bos_token")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let bos = file
            .get("tokenizer.ggml.bos_token_id")
            .and_then(Value::as_u64)
            .and_then(|b| u32::try_from(b).ok())
            .filter(|_| add_bos);
        Ok(Tokenizer {
            inner: Inner::Hf(Box::new(inner)),
            bos,
        })
    }

    /// A GGUF `llama` (SentencePiece) vocabulary: tokens, scores and types as stored.
    fn from_gguf_spm(file: &GgufFile) -> Result<Tokenizer> {
        let arr = |key: &str| {
            file.get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| Error::Tokenizer(format!("GGUF has no {key}")))
        };
        let tokens = arr("tokenizer.ggml.tokens")?;
        let scores = arr("tokenizer.ggml.scores")?;
        let types = arr("tokenizer.ggml.token_type")?;
        if scores.len() != tokens.len() || types.len() != tokens.len() {
            return Err(tok_err("tokens, scores and token_type differ in length"));
        }
        let mut pieces = Vec::with_capacity(tokens.len());
        for ((t, s), k) in tokens.iter().zip(scores).zip(types) {
            pieces.push(SpmPiece {
                text: t
                    .as_str()
                    .ok_or_else(|| tok_err("a token is not a string"))?
                    .to_owned(),
                score: s
                    .as_f64()
                    .ok_or_else(|| tok_err("a score is not a number"))?
                    as f32,
                kind: k
                    .as_u64()
                    .and_then(|k| u32::try_from(k).ok())
                    .ok_or_else(|| tok_err("a token type is not an integer"))?,
            });
        }
        let add_bos = file
            .get("tokenizer.ggml.add_bos_token")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let bos = file
            .get("tokenizer.ggml.bos_token_id")
            .and_then(Value::as_u64)
            .and_then(|b| u32::try_from(b).ok())
            .filter(|&b| add_bos && (b as usize) < pieces.len());
        // llama.cpp's llama vocabulary applies no normalization rule beyond the dummy prefix.
        Tokenizer::from_spm(&pieces, bos, &SpmNormalizer::LLAMA)
    }

    /// The tokenizer as a `tokenizer.json` document (how a GGUF vocabulary is written back into
    /// an HF folder).
    ///
    /// A GGUF's `add_bos_token` becomes a `TemplateProcessing` post-processor, as HF Llama
    /// tokenizers carry it, so the document encodes exactly as [`Tokenizer::encode`].
    pub fn to_json(&self) -> Result<String> {
        let Inner::Hf(inner) = &self.inner else {
            return Err(tok_err(
                "a SentencePiece vocabulary is not written as tokenizer.json",
            ));
        };
        let text = inner.to_string(true).map_err(tok_err)?;
        let Some(bos) = self.bos else {
            return Ok(text);
        };
        let token = inner
            .id_to_token(bos)
            .ok_or_else(|| tok_err(format!("BOS id {bos} is not in the vocabulary")))?;
        let mut doc: Json = serde_json::from_str(&text).map_err(tok_err)?;
        doc["post_processor"] = json!({
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": token, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}}
            ],
            "pair": [
                {"SpecialToken": {"id": token, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": token, "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}}
            ],
            "special_tokens": {token.clone(): {"id": token, "ids": [bos], "tokens": [token]}}
        });
        serde_json::to_string_pretty(&doc).map_err(tok_err)
    }

    /// The ids of `text`, with the special tokens the model's tokenizer adds (BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = self.bos.into_iter().collect();
        match &self.inner {
            Inner::Hf(t) => ids.extend_from_slice(t.encode(text, true).map_err(tok_err)?.get_ids()),
            Inner::Spm(s) => ids.extend(s.encode(text)?),
        }
        Ok(ids)
    }

    /// The text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match &self.inner {
            Inner::Hf(t) => t.decode(ids, true).map_err(tok_err),
            Inner::Spm(s) => Ok(s.decode(ids)),
        }
    }
}

/// A `tokenizer.json` document for a byte-level BPE vocabulary.
fn bpe_json(tokens: &[String], merges: &[String], types: &[u64], pre: &str) -> Result<Json> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |re: &str| {
        json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
            byte_level(false),
        ]})
    };
    let pre_tokenizer = match pre {
        "default" | "gpt-2" => byte_level(true),
        "llama3" | "llama-bpe" | "smaug-bpe" | "falcon3" => split(LLAMA3_SPLIT),
        "qwen2" | "deepseek-r1-qwen" => split(QWEN2_SPLIT),
        other => {
            return Err(Error::Tokenizer(format!(
                "GGUF pre-tokenizer `{other}` is not supported"
            )));
        }
    };
    let vocab: serde_json::Map<String, Json> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<Json> = tokens
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let ty = types.get(i).copied().unwrap_or(1);
            (ty == 3 || ty == 4).then(|| {
                json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": ty == 4, "special": ty == 3})
            })
        })
        .collect();
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges},
    }))
}
