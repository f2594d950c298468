//! A bounds-checked protobuf wire reader: just enough to walk ONNX messages field by field.
//! Wire format: <https://protobuf.dev/programming-guides/encoding/>. Nothing is allocated from
//! a length before the length is checked against the bytes left.

use crate::error::{Error, ErrorKind, Result, malformed};

/// One field's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1 (little-endian 8 bytes).
    Fixed64(u64),
    /// Wire type 2: absolute byte range in the buffer.
    Bytes(usize, usize),
    /// Wire type 5 (little-endian 4 bytes).
    Fixed32(u32),
}

/// Iterates the fields of one message held in `buf[start..end]`.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Fields<'a> {
    /// The fields of the message in `buf[start..end]`.
    pub fn new(buf: &'a [u8], start: usize, end: usize) -> Self {
        Fields {
            buf,
            pos: start,
            end: end.min(buf.len()),
        }
    }

    /// Byte offset of the next field (for error messages).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The next `(field number, payload)`, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, Wire)>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let at = self.pos as u64;
        let tag = self.varint().map_err(|e| e.at(at))?;
        let field = u32::try_from(tag >> 3)
            .ok()
            .filter(|&f| f > 0)
            .ok_or_else(|| malformed("protobuf", format!("field number {}", tag >> 3)).at(at))?;
        let wire = match tag & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.array()?)),
            2 => {
                let n = self.varint()?;
                let start = self.pos;
                self.skip(n)?;
                Wire::Bytes(start, self.pos)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(self.array()?)),
            t => {
                return Err(malformed(
                    "protobuf",
                    format!("wire type {t} (groups are not used by ONNX)"),
                )
                .at(at));
            }
        };
        Ok(Some((field, wire)))
    }

    /// A base-128 varint of at most 10 bytes.
    pub fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let b = *self
                .buf
                .get(self.pos)
                .filter(|_| self.pos < self.end)
                .ok_or_else(|| truncated(1, 0))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f).checked_shl(7 * i).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed("protobuf", "varint longer than 10 bytes"))
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        let left = (self.end - self.pos.min(self.end)) as u64;
        if n > left {
            return Err(truncated(n, left).at(self.pos as u64));
        }
        // n <= left <= usize::MAX here.
        self.pos += usize::try_from(n).unwrap_or(usize::MAX);
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let start = self.pos;
        self.skip(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(self.buf.get(start..self.pos).unwrap_or(&[0; N][..]));
        Ok(a)
    }
}

fn truncated(need: u64, have: u64) -> Error {
    Error::new(ErrorKind::Truncated { need, have })
}

/// Counts the varints in a packed range (each ends with a byte whose top bit is clear).
pub fn count_varints(buf: &[u8], start: usize, end: usize) -> Result<u64> {
    let bytes = buf
        .get(start..end)
        .ok_or_else(|| truncated(end as u64, buf.len() as u64))?;
    if bytes.last().is_some_and(|b| b & 0x80 != 0) {
        return Err(malformed("protobuf", "packed varints end mid-value"));
    }
    Ok(bytes.iter().filter(|b| *b & 0x80 == 0).count() as u64)
}

/// Decodes every varint of a packed range.
pub fn varints(buf: &[u8], start: usize, end: usize) -> Result<Vec<u64>> {
    let mut f = Fields::new(buf, start, end);
    let mut out = Vec::new();
    while f.pos() < end {
        out.push(f.varint()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_refuses_lies() {
        // field 1 varint 150, field 2 bytes "hi".
        let buf = [0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i'];
        let mut f = Fields::new(&buf, 0, buf.len());
        assert_eq!(f.next_field().unwrap(), Some((1, Wire::Varint(150))));
        assert_eq!(f.next_field().unwrap(), Some((2, Wire::Bytes(5, 7))));
        assert_eq!(f.next_field().unwrap(), None);
        let lie = [0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, b'x'];
        assert!(Fields::new(&lie, 0, lie.len()).next_field().is_err());
        let long = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(Fields::new(&long, 0, long.len()).next_field().is_err());
        assert!(Fields::new(&[0x0b], 0, 1).next_field().is_err());
        assert_eq!(count_varints(&[0x96, 0x01, 0x05], 0, 3).unwrap(), 2);
    }
}
