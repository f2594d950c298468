//! The tokenizer as `tokenizer.ggml.*` keys, as llama.cpp's converter writes them
//! (`conversion/base.py` `get_vocab_base`, `_set_vocab_sentencepiece`; gguf-py `vocab.py`).
//!
//! `tokenizer.ggml.pre` is chosen as llama.cpp's converter chooses it: the sha256 of the token ids
//! of its probe text, looked up in its table (`pre_hashes.rs`). For a tokenizer that table does
//! not know (llama.cpp's converter refuses those), the name comes from the pre-tokenizer's split
//! regex instead; `--pre` overrides both.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value as Json;

use super::spm::parse_pieces;
use crate::error::{Error, ErrorKind, Result};
use crate::gguf::{Value, ValueType};
use crate::json::read_strict;

const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

type Kvs = Vec<(String, Value)>;

fn kv(k: &str, v: Value) -> (String, Value) {
    (format!("tokenizer.ggml.{k}"), v)
}

/// Tokenizer keys for the HF folder `dir`; `vocab_size` from config pads the vocabulary.
pub fn tokenizer_kvs(dir: &Path, config: &Json, vocab_size: u64, pre: Option<&str>) -> Result<Kvs> {
    if dir.join("tokenizer.json").is_file() {
        bpe(dir, config, vocab_size, pre)
    } else if dir.join("tokenizer.model").is_file() {
        spm(dir, config, vocab_size)
    } else {
        Err(Error::new(ErrorKind::Unconvertible(
            "no tokenizer.json or tokenizer.model: llama.cpp needs a vocabulary".into(),
        ))
        .in_file(dir))
    }
}

fn bpe(dir: &Path, config: &Json, vocab_size: u64, pre: Option<&str>) -> Result<Kvs> {
    let path = dir.join("tokenizer.json");
    let tok = read_strict(&path)?;
    let bad = |m: &str| Error::new(ErrorKind::Unconvertible(m.into())).in_file(&path);
    if tok["model"]["type"].as_str() != Some("BPE") {
        return Err(bad("only BPE tokenizer.json is supported"));
    }
    let mut by_id: HashMap<u64, (String, i32)> = HashMap::new();
    for (t, id) in tok["model"]["vocab"]
        .as_object()
        .ok_or_else(|| bad("model.vocab missing"))?
    {
        let id = id
            .as_u64()
            .ok_or_else(|| bad("vocab ids must be integers"))?;
        by_id.insert(id, (t.clone(), NORMAL));
    }
    for a in tok["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (a["id"].as_u64(), a["content"].as_str()) else {
            continue;
        };
        let kind = if a["special"].as_bool() == Some(true) || looks_special(content) {
            CONTROL
        } else {
            USER_DEFINED
        };
        let text = if kind == USER_DEFINED {
            content.replace('\u{2581}', " ")
        } else {
            content.to_owned()
        };
        by_id.insert(id, (text, kind));
    }
    let n = vocab_size.max(by_id.keys().max().map_or(0, |m| m + 1));
    let (tokens, types): (Vec<_>, Vec<_>) = (0..n)
        .map(|i| {
            by_id
                .remove(&i)
                .unwrap_or_else(|| (format!("[PAD{i}]"), UNUSED))
        })
        .unzip();
    let merges: Vec<String> = tok["model"]["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            Json::String(s) => Some(s.clone()),
            Json::Array(p) => Some(
                p.iter()
                    .filter_map(Json::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        })
        .collect();
    let pre = pre
        .map(str::to_owned)
        .or_else(|| llama_cpp_pre(dir).map(str::to_owned))
        .unwrap_or_else(|| detect_pre(&tok["pre_tokenizer"]));
    let mut out = vec![
        kv("model", Value::String("gpt2".into())),
        kv("pre", Value::String(pre)),
        kv("tokens", Value::strings(tokens.clone())),
        kv(
            "token_type",
            Value::Array(ValueType::I32, types.into_iter().map(Value::I32).collect()),
        ),
        kv("merges", Value::strings(merges)),
    ];
    out.extend(special_ids(dir, config, &tokens, Some(&tok))?);
    Ok(out)
}

/// sha256 (hex) of Python's `str(ids)` for the ids `tokenizer.json` gives the probe text, with
/// the special tokens the tokenizer adds, as llama.cpp's `get_vocab_base_pre` computes it.
pub fn probe_hash(dir: &Path) -> Option<String> {
    use sha2::Digest as _;
    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).ok()?;
    let enc = tok.encode(super::pre_hashes::PROBE, true).ok()?;
    let ids: Vec<String> = enc.get_ids().iter().map(u32::to_string).collect();
    let digest = sha2::Sha256::digest(format!("[{}]", ids.join(", ")).as_bytes());
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// The name llama.cpp's converter gives this tokenizer, when its table knows it.
fn llama_cpp_pre(dir: &Path) -> Option<&'static str> {
    let hash = probe_hash(dir)?;
    super::pre_hashes::KNOWN
        .iter()
        .find(|(h, _)| *h == hash)
        .map(|&(_, name)| name)
}

/// Pre-tokenizer name for llama.cpp from the split regex (`llama-vocab.cpp` lists the regexes
/// each name stands for): a bare byte-level split is GPT-2's.
fn detect_pre(pre: &Json) -> String {
    let text = pre.to_string();
    let known = [
        (
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}",
            "llama-bpe",
        ),
        (
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}|",
            "qwen2",
        ),
        ("\\\\p{N}{1,3}", "deepseek-v3"),
    ];
    for (needle, name) in known {
        if text.contains(needle) {
            return name.into();
        }
    }
    "gpt-2".into()
}

fn looks_special(t: &str) -> bool {
    (t.starts_with("<|") && t.ends_with("|>"))
        || matches!(
            t,
            "<s>" | "</s>" | "<pad>" | "<unk>" | "<mask>" | "<eos>" | "<bos>"
        )
}

fn token_name(v: &Json) -> Option<&str> {
    v.as_str().or_else(|| v["content"].as_str())
}

const SPECIAL_TYPES: [&str; 7] = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"];

fn gguf_key(typ: &str) -> &str {
    match typ {
        "unk" => "unknown",
        "pad" => "padding",
        "sep" => "seperator", // sic: gguf-py's key name
        other => other,
    }
}

/// Special token ids and add-flags as gguf-py's `SpecialVocab` finds them: token strings of
/// `tokenizer_config.json` looked up in the vocabulary (only with a `tokenizer.json`), then
/// `config.json` ids for the rest; flags from the post-processor template, then overridden by
/// `tokenizer_config.json`.
fn special_ids(dir: &Path, config: &Json, tokens: &[String], tok: Option<&Json>) -> Result<Kvs> {
    let tc_path = dir.join("tokenizer_config.json");
    let tc = if tc_path.is_file() {
        read_strict(&tc_path)?
    } else {
        Json::Null
    };
    let mut ids: Vec<(&str, u64)> = Vec::new();
    if tok.is_some() {
        for typ in SPECIAL_TYPES {
            let found = token_name(&tc[format!("{typ}_token")])
                .and_then(|t| tokens.iter().position(|x| x == t));
            if let Some(i) = found {
                ids.push((typ, i as u64));
            }
        }
    }
    for typ in SPECIAL_TYPES {
        let id = config[format!("{typ}_token_id")]
            .as_u64()
            .filter(|&i| (i as usize) < tokens.len());
        if let (Some(id), false) = (id, ids.iter().any(|(t, _)| *t == typ)) {
            ids.push((typ, id));
        }
    }
    let mut flags = tok
        .map(|t| template_flags(&t["post_processor"], &tc))
        .unwrap_or_default();
    for typ in SPECIAL_TYPES {
        if let Some(b) = tc[format!("add_{typ}_token")].as_bool() {
            match flags.iter_mut().find(|(t, _)| *t == typ) {
                Some(f) => f.1 = b,
                None => flags.push((typ, b)),
            }
        }
    }
    let mut out: Kvs = ids
        .into_iter()
        .map(|(t, i)| kv(&format!("{}_token_id", gguf_key(t)), Value::U32(i as u32)))
        .collect();
    out.extend(
        flags
            .into_iter()
            .map(|(t, b)| kv(&format!("add_{t}_token"), Value::Bool(b))),
    );
    if let Some(t) = tc["chat_template"].as_str() {
        // Copied verbatim as data; never rendered (RELIABILITY.md G17).
        out.push(("tokenizer.chat_template".into(), Value::String(t.into())));
    }
    Ok(out)
}

fn special_id(item: &Json) -> Option<&str> {
    item["SpecialToken"]["id"].as_str()
}

/// add_bos / add_eos / add_sep from a `TemplateProcessing` post-processor (gguf-py `vocab.py`;
/// like it, this reads only simple templates).
fn template_flags(pp: &Json, tc: &Json) -> Vec<(&'static str, bool)> {
    let mut flags = Vec::new();
    if pp["type"].as_str() != Some("TemplateProcessing") {
        return flags;
    }
    let (bos, eos, sep) = (
        token_name(&tc["bos_token"]),
        token_name(&tc["eos_token"]),
        token_name(&tc["sep_token"]),
    );
    let single = pp["single"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (mut first, mut last) = (None, None);
    if single.len() > 1 {
        first = single.first().and_then(special_id);
        if let Some(f) = first {
            flags.push((
                "bos",
                Some(f) == bos || Some(f) == token_name(&tc["cls_token"]),
            ));
        }
        last = single.last().and_then(special_id);
        if let Some(l) = last {
            flags.push(("eos", Some(l) == eos));
        }
    }
    let pair = pp["pair"].as_array().map(Vec::as_slice).unwrap_or_default();
    let start = usize::from(first.is_some() && pair.first().and_then(special_id) == first);
    let stop = pair.len() - usize::from(last.is_some() && pair.last().and_then(special_id) == last);
    let middle = pair.get(start..stop).unwrap_or_default();
    let is_seq =
        |i: Option<&Json>, id: &str| i.and_then(|x| x["Sequence"]["id"].as_str()) == Some(id);
    if middle.len() > 2 && is_seq(middle.first(), "A") && is_seq(middle.last(), "B") {
        let inner = &middle[1..middle.len() - 1];
        let sep_like = |i: Option<&Json>| {
            i.and_then(special_id)
                .is_some_and(|t| Some(t) == sep || Some(t) == eos)
        };
        let add_sep = (sep_like(inner.first()) && last.is_none())
            || (inner.len() == 2 && sep_like(inner.get(1)));
        flags.push(("sep", add_sep));
    }
    flags
}

fn spm(dir: &Path, config: &Json, vocab_size: u64) -> Result<Kvs> {
    let path = dir.join("tokenizer.model");
    let bytes = std::fs::read(&path).map_err(|e| Error::from(e).in_file(&path))?;
    let pieces = parse_pieces(&bytes).map_err(|e| e.in_file(&path))?;
    let n = vocab_size.max(pieces.len() as u64) as usize;
    let mut tokens = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    for i in 0..n {
        match pieces.get(i) {
            Some(p) => {
                tokens.push(p.piece.clone());
                scores.push(Value::F32(p.score));
                // llama.cpp keeps unknown/control/unused/byte and maps the rest to NORMAL.
                types.push(Value::I32(if matches!(p.kind, 2 | 3 | 5 | 6) {
                    p.kind as i32
                } else {
                    NORMAL
                }));
            }
            None => {
                tokens.push(format!("[PAD{i}]"));
                scores.push(Value::F32(-1000.0));
                types.push(Value::I32(UNUSED));
            }
        }
    }
    let mut out = vec![
        kv("model", Value::String("llama".into())),
        kv("pre", Value::String("default".into())),
        kv("tokens", Value::strings(tokens.clone())),
        kv("scores", Value::Array(ValueType::F32, scores)),
        kv("token_type", Value::Array(ValueType::I32, types)),
    ];
    out.extend(special_ids(dir, config, &tokens, None)?);
    Ok(out)
}
