//! The vocabulary of a SentencePiece `tokenizer.model`: a protobuf `ModelProto` whose field 1
//! repeats `SentencePiece { piece: string = 1, score: float = 2, type: enum = 3 }`
//! (sentencepiece `src/sentencepiece_model.proto`). Only those fields are read; everything
//! else is skipped by wire type, with every length checked against the bytes left.

use crate::error::{Result, malformed};

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The piece text (`▁` marks a word start).
    pub piece: String,
    /// Its log-probability score.
    pub score: f32,
    /// NORMAL=1, UNKNOWN=2, CONTROL=3, USER_DEFINED=4, UNUSED=5, BYTE=6.
    pub kind: u32,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .b
                .get(self.pos)
                .ok_or_else(|| malformed("tokenizer.model", "truncated varint"))?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed("tokenizer.model", "varint longer than 10 bytes"))
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8]> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n));
        let s = end.and_then(|e| self.b.get(self.pos..e)).ok_or_else(|| {
            malformed(
                "tokenizer.model",
                format!("field of {n} bytes runs past the end"),
            )
        })?;
        self.pos += s.len();
        Ok(s)
    }

    /// Returns (field, wire type, payload for length-delimited / 32-bit fields).
    fn field(&mut self) -> Result<(u64, u64, u64, &'a [u8])> {
        let key = self.varint()?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => Ok((field, wire, self.varint()?, &[])),
            1 => Ok((field, wire, 0, self.bytes(8)?)),
            2 => {
                let n = self.varint()?;
                Ok((field, wire, 0, self.bytes(n)?))
            }
            5 => Ok((field, wire, 0, self.bytes(4)?)),
            w => Err(malformed(
                "tokenizer.model",
                format!("unsupported wire type {w}"),
            )),
        }
    }
}

/// The parts of `ModelProto.normalizer_spec` (field 3) that change token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalizer {
    /// `nmt_nfkc`, `nfkc`, `identity`, ... (field 1).
    pub name: String,
    /// Prepend `▁` to the input (field 3, default true).
    pub add_dummy_prefix: bool,
    /// Strip leading/trailing and collapse inner whitespace (field 4, default true).
    pub remove_extra_whitespaces: bool,
    /// The compiled character map of the normalization rule (field 2; empty for `identity`).
    pub charsmap: Vec<u8>,
}

/// Parses the normalizer spec of a `tokenizer.model` (the proto defaults when absent).
pub fn parse_normalizer(bytes: &[u8]) -> Result<Normalizer> {
    let mut out = Normalizer {
        name: "nmt_nfkc".into(),
        add_dummy_prefix: true,
        remove_extra_whitespaces: true,
        charsmap: Vec::new(),
    };
    let mut r = Reader { b: bytes, pos: 0 };
    while !r.done() {
        let (field, wire, _, payload) = r.field()?;
        if field != 3 || wire != 2 {
            continue;
        }
        let mut n = Reader { b: payload, pos: 0 };
        while !n.done() {
            match n.field()? {
                (1, 2, _, s) => out.name = String::from_utf8_lossy(s).into_owned(),
                (2, 2, _, s) => out.charsmap = s.to_vec(),
                (3, 0, v, _) => out.add_dummy_prefix = v != 0,
                (4, 0, v, _) => out.remove_extra_whitespaces = v != 0,
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Parses the pieces of a `tokenizer.model`.
pub fn parse_pieces(bytes: &[u8]) -> Result<Vec<Piece>> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut out = Vec::new();
    while !r.done() {
        let (field, wire, _, payload) = r.field()?;
        if field == 1 && wire == 2 {
            out.push(parse_piece(payload)?);
        }
    }
    if out.is_empty() {
        return Err(malformed("tokenizer.model", "no pieces"));
    }
    Ok(out)
}

fn parse_piece(bytes: &[u8]) -> Result<Piece> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut p = Piece {
        piece: String::new(),
        score: 0.0,
        kind: 1,
    };
    while !r.done() {
        match r.field()? {
            (1, 2, _, s) => {
                p.piece = String::from_utf8(s.to_vec())
                    .map_err(|_| malformed("tokenizer.model", "piece is not UTF-8"))?;
            }
            (2, 5, _, s) => p.score = f32::from_le_bytes(s.try_into().unwrap_or_default()),
            (3, 0, v, _) => p.kind = u32::try_from(v).unwrap_or(1),
            _ => {}
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_mistral_fixture_and_refuses_garbage() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/fixtures/models/mistral_bf16/tokenizer.model");
        let pieces = parse_pieces(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(pieces.len(), 1024);
        assert_eq!((pieces[0].piece.as_str(), pieces[0].kind), ("<unk>", 2));
        assert_eq!((pieces[1].piece.as_str(), pieces[1].kind), ("<s>", 3));
        assert!(parse_pieces(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(parse_pieces(&[0x0a]).is_err());
    }
}
