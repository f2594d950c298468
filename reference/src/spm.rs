//! SentencePiece BPE (`tokenizer.model`, GGUF `tokenizer.ggml.model = llama`), encoded the way
//! the SentencePiece library does it (`src/bpe_model.cc`, `src/normalizer.cc`):
//! normalize (the model's compiled character map, whitespace removal), prepend `▁` and turn
//! spaces into `▁`, split into characters (user-defined pieces kept whole), then repeatedly merge
//! the adjacent pair whose concatenation is the highest-scoring piece (leftmost on ties); symbols
//! left outside the vocabulary fall back to `<0xNN>` byte pieces, or `<unk>`.
//!
//! This is the algorithm itself rather than transformers' merges-based conversion, which differs
//! from it when a vocabulary lacks a piece's halves (small or unusual vocabularies).

use std::collections::HashMap;

use tokenizers::{NormalizedString, Normalizer};

use crate::{Error, Result};

/// One vocabulary entry: text, score, SentencePiece type (1 normal, 2 unknown, 3 control,
/// 4 user-defined, 5 unused, 6 byte).
#[derive(Debug, Clone)]
pub(crate) struct SpmPiece {
    pub text: String,
    pub score: f32,
    pub kind: u32,
}

const UNKNOWN: u32 = 2;
const CONTROL: u32 = 3;
const USER_DEFINED: u32 = 4;
const UNUSED: u32 = 5;
const BYTE: u32 = 6;

/// What SentencePiece does to text before it splits it (`normalizer_spec`).
#[derive(Debug, Clone)]
pub(crate) struct SpmNormalizer {
    /// The compiled character map (NFKC and NMT rules), empty for `identity`.
    pub charsmap: Vec<u8>,
    /// Strip the ends and collapse inner runs of whitespace.
    pub remove_extra_whitespaces: bool,
    /// Prepend `▁`.
    pub add_dummy_prefix: bool,
}

impl SpmNormalizer {
    /// Llama and Mistral models: no rule, no whitespace removal, a dummy prefix.
    pub const LLAMA: SpmNormalizer = SpmNormalizer {
        charsmap: Vec::new(),
        remove_extra_whitespaces: false,
        add_dummy_prefix: true,
    };
}

/// A SentencePiece BPE encoder.
#[derive(Debug, Clone)]
pub(crate) struct Spm {
    pieces: Vec<SpmPiece>,
    /// Mergeable pieces (normal, user-defined, unknown text excluded): text → (id, score).
    vocab: HashMap<String, (u32, f32)>,
    user_defined: Vec<(String, u32)>,
    /// Id of the `<0xNN>` piece for each byte (`<unk>` where the vocabulary lacks it).
    byte_ids: [u32; 256],
    charsmap: Option<tokenizers::normalizers::precompiled::Precompiled>,
    remove_extra_whitespaces: bool,
    add_dummy_prefix: bool,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl Spm {
    pub(crate) fn new(pieces: Vec<SpmPiece>, norm: &SpmNormalizer) -> Result<Self> {
        let mut vocab = HashMap::new();
        let mut user_defined = Vec::new();
        let mut bytes: HashMap<u8, u32> = HashMap::new();
        let mut unk = None;
        for (i, p) in pieces.iter().enumerate() {
            let id = u32::try_from(i).map_err(err)?;
            match p.kind {
                UNKNOWN => unk = Some(id),
                BYTE => {
                    let hex = p.text.trim_start_matches("<0x").trim_end_matches('>');
                    if let Ok(b) = u8::from_str_radix(hex, 16) {
                        bytes.entry(b).or_insert(id);
                    }
                }
                CONTROL | UNUSED => {}
                USER_DEFINED => user_defined.push((p.text.clone(), id)),
                _ => {
                    vocab.entry(p.text.clone()).or_insert((id, p.score));
                }
            }
        }
        // Longest user-defined piece first, as SentencePiece's prefix matcher prefers.
        user_defined.sort_by_key(|u| std::cmp::Reverse(u.0.len()));
        let charsmap = if norm.charsmap.is_empty() {
            None
        } else {
            Some(
                tokenizers::normalizers::precompiled::Precompiled::from(&norm.charsmap)
                    .map_err(err)?,
            )
        };
        let unk = unk.ok_or_else(|| err("the vocabulary has no <unk> piece"))?;
        let byte_ids = std::array::from_fn(|b| {
            u8::try_from(b)
                .ok()
                .and_then(|b| bytes.get(&b).copied())
                .unwrap_or(unk)
        });
        Ok(Spm {
            pieces,
            vocab,
            user_defined,
            byte_ids,
            charsmap,
            remove_extra_whitespaces: norm.remove_extra_whitespaces,
            add_dummy_prefix: norm.add_dummy_prefix,
        })
    }

    fn normalize(&self, text: &str) -> Result<String> {
        let mut s = text.to_owned();
        if let Some(map) = &self.charsmap {
            let mut n = NormalizedString::from(text);
            map.normalize(&mut n).map_err(err)?;
            s = n.get().to_owned();
        }
        if self.remove_extra_whitespaces {
            s = s
                .split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
        }
        if s.is_empty() {
            return Ok(s);
        }
        if self.add_dummy_prefix {
            s.insert(0, ' ');
        }
        Ok(s.replace(' ', "▁"))
    }

    /// Initial symbols: user-defined pieces whole, other text one character each.
    fn symbols(&self, s: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if let Some((u, _)) = self
                .user_defined
                .iter()
                .find(|(u, _)| rest.starts_with(u.as_str()))
            {
                out.push((u.clone(), false));
                rest = &rest[u.len()..];
            } else {
                out.push((c.to_string(), true));
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }

    /// Token ids of `text` (no BOS).
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut sym = self.symbols(&self.normalize(text)?);
        loop {
            let mut best: Option<(f32, usize)> = None;
            for i in 0..sym.len().saturating_sub(1) {
                let (a, b) = (&sym[i], &sym[i + 1]);
                if !(a.1 && b.1) {
                    continue;
                }
                let joined = format!("{}{}", a.0, b.0);
                if let Some(&(_, score)) = self.vocab.get(&joined)
                    && best.is_none_or(|(s, _)| score > s)
                {
                    best = Some((score, i));
                }
            }
            let Some((_, i)) = best else { break };
            let right = sym.remove(i + 1).0;
            sym[i].0.push_str(&right);
        }
        let mut ids = Vec::with_capacity(sym.len());
        for (s, _) in sym {
            if let Some(&(id, _)) = self.vocab.get(&s) {
                ids.push(id);
            } else if let Some(id) = self.user_defined.iter().find(|(u, _)| *u == s).map(|x| x.1) {
                ids.push(id);
            } else {
                ids.extend(s.bytes().map(|b| self.byte_ids[usize::from(b)]));
            }
        }
        Ok(ids)
    }

    /// Text of `ids`, control pieces skipped, byte pieces joined back into UTF-8.
    pub(crate) fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let Some(p) = self.pieces.get(id as usize) else {
                continue;
            };
            match p.kind {
                CONTROL | UNKNOWN | UNUSED => {}
                BYTE => {
                    let hex = p.text.trim_start_matches("<0x").trim_end_matches('>');
                    if let Ok(b) = u8::from_str_radix(hex, 16) {
                        bytes.push(b);
                    }
                }
                _ => bytes.extend_from_slice(p.text.replace('▁', " ").as_bytes()),
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        text.strip_prefix(' ').map(str::to_owned).unwrap_or(text)
    }
}
