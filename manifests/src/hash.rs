//! Streaming sha256: files are hashed as their bytes go out, never read back.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// The sha256 (lowercase hex) and length of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Lowercase hex sha256.
    pub sha256: String,
    /// Number of bytes hashed.
    pub bytes: u64,
}

/// A callback fed every byte a writer emits (the same shape as converters' `Tap`).
pub type Tap = Box<dyn FnMut(&[u8]) + Send>;

/// An incremental sha256 that also counts bytes.
#[derive(Debug, Clone, Default)]
pub struct StreamHasher {
    sha: Sha256,
    bytes: u64,
}

impl StreamHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.bytes += data.len() as u64;
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        Digest {
            sha256: hex(&self.sha.finalize()),
            bytes: self.bytes,
        }
    }
}

/// A [`StreamHasher`] shared between a writer's tap (which feeds it) and the code that
/// records the digest once the writer is done.
#[derive(Debug, Clone, Default)]
pub struct SharedHasher(Arc<Mutex<StreamHasher>>);

impl SharedHasher {
    /// A fresh shared hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// A callback for a writer's tap: every byte it is given is hashed, in order.
    pub fn tap(&self) -> Tap {
        let inner = Arc::clone(&self.0);
        Box::new(move |data| {
            inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .update(data)
        })
    }

    /// The digest of everything the taps have seen so far.
    pub fn digest(&self) -> Digest {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .finish()
    }
}

/// Hashes a reader to its end.
pub fn hash_reader(mut r: impl Read) -> io::Result<Digest> {
    let mut h = StreamHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(h.finish()),
            Ok(n) => h.update(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Hashes a file.
pub fn hash_file(path: &Path) -> Result<Digest> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    hash_reader(f).map_err(|e| Error::io(path, e))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // FIPS 180-2 test vector "abc".
        let d = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.bytes, 3);
    }

    #[test]
    fn shared_tap_equals_one_shot() {
        let h = SharedHasher::new();
        let mut tap = h.tap();
        tap(b"hello ");
        tap(b"world");
        assert_eq!(h.digest(), hash_reader(&b"hello world"[..]).unwrap());
    }
}
