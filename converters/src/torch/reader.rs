//! Bounds-checked reading of a pickle stream's operands: every length is checked against the
//! bytes left before anything is taken or allocated (RELIABILITY.md P9).

use crate::error::{Error, ErrorKind, Result, malformed};

/// A position in a pickle stream.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts at the first byte of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// The current byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current offset.
    pub fn left(&self) -> u64 {
        self.data.len().saturating_sub(self.pos) as u64
    }

    /// One `\n`-terminated line of a GLOBAL opcode (at most 256 bytes).
    pub fn line(&mut self) -> Result<String> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let end = rest
            .iter()
            .take(256)
            .position(|&b| b == b'\n')
            .ok_or_else(|| malformed("pickle", "GLOBAL name without newline"))?;
        let line = rest.get(..end).unwrap_or_default();
        let s = std::str::from_utf8(line).map_err(|_| malformed("pickle", "GLOBAL not UTF-8"))?;
        self.pos = self.pos.saturating_add(end).saturating_add(1);
        Ok(s.to_owned())
    }

    /// The next `n` bytes, if that many are left.
    pub fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let have = self.data.len().saturating_sub(self.pos) as u64;
        let end = usize::try_from(n)
            .ok()
            .filter(|_| n <= have)
            .and_then(|n| self.pos.checked_add(n));
        let s = end
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or(Error::new(ErrorKind::Truncated { need: n, have }))?;
        self.pos = self.pos.saturating_add(s.len());
        Ok(s)
    }

    /// The next `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Result<u8> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }
}
