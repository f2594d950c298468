//! The `.npy` format (NumPy `format.py`, version 1.0) for f32 logits out and fixture arrays in.
//! Pure byte functions: callers do the I/O (the CLI writes atomically).

use crate::{Error, Result};

/// `.npy` bytes of a little-endian f32 C-order array of `shape`.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    data.iter()
        .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

/// An array read from `.npy` bytes, converted to f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Shape, outer first.
    pub shape: Vec<usize>,
    /// Values in C order.
    pub data: Vec<f64>,
}

fn bad(msg: &str) -> Error {
    Error::Request(format!("not a supported .npy file: {msg}"))
}

/// Parses a C-order little-endian `<f4`, `<f8`, `<i4` or `<i8` `.npy` (version 1 or 2).
pub fn decode(bytes: &[u8]) -> Result<Array> {
    if bytes.get(..6) != Some(b"\x93NUMPY") {
        return Err(bad("magic"));
    }
    let major = *bytes.get(6).ok_or_else(|| bad("version"))?;
    let (len, start) = match major {
        1 => {
            let b = bytes.get(8..10).ok_or_else(|| bad("header"))?;
            (u16::from_le_bytes([b[0], b[1]]) as usize, 10)
        }
        2 | 3 => {
            let b = bytes.get(8..12).ok_or_else(|| bad("header"))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        _ => return Err(bad("version")),
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("header"))?;
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran order"));
    }
    let descr = header
        .split("'descr':")
        .nth(1)
        .and_then(|s| s.split('\'').nth(1))
        .ok_or_else(|| bad("descr"))?;
    let shape_str = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("shape"))?;
    let shape: Vec<usize> = shape_str
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("shape")))
        .collect::<Result<_>>()?;
    let body = bytes.get(start + len..).ok_or_else(|| bad("data"))?;
    let n: usize = shape.iter().product();
    let width = match descr {
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        _ => return Err(bad("dtype")),
    };
    if body.len() != n * width {
        return Err(bad("data length"));
    }
    let data = body
        .chunks_exact(width)
        .map(|c| match descr {
            "<f4" => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            "<i4" => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            "<f8" => f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
            _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64,
        })
        .collect();
    Ok(Array { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = encode_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        assert_eq!((bytes.len() - 24) % 64, 0);
        let a = decode(&bytes).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(b"nope").is_err());
    }
}
