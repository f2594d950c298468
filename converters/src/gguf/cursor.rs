//! Bounds-checked little-endian reads over a byte slice; every error carries its offset.

use crate::error::{Error, ErrorKind, Result, malformed};
use crate::limits::GGUF_MAX_STRING;

/// A read position in a GGUF file's bytes.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    pub(super) fn pos(&self) -> u64 {
        self.pos as u64
    }

    pub(super) fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    pub(super) fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let have = self.remaining();
        if n > have {
            let need = self.pos() + n;
            return Err(Error::new(ErrorKind::Truncated {
                need,
                have: self.bytes.len() as u64,
            })
            .at(self.pos()));
        }
        let start = self.pos;
        self.pos += n as usize;
        self.bytes
            .get(start..self.pos)
            .ok_or_else(|| malformed("gguf", "read out of range"))
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_le_bytes)
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string of at most `cap` bytes.
    pub(super) fn string(&mut self, what: &'static str, cap: u64) -> Result<String> {
        let at = self.pos();
        let len = self.u64()?;
        if len > cap.min(GGUF_MAX_STRING) {
            return Err(Error::new(ErrorKind::TooLarge {
                what,
                value: len,
                cap,
            })
            .at(at));
        }
        let bytes = self.take(len).map_err(|e| e.at(at))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| malformed(what, "not valid UTF-8").at(at))
    }
}
