//! Read-only memory maps of input files, with a check that the file did not change under us.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use memmap2::Mmap;
use wharf_core::Access;

use crate::error::{Error, ErrorKind, Result};

/// A memory-mapped input file.
#[derive(Debug)]
pub struct Mapped {
    path: PathBuf,
    map: Option<Mmap>,
    len: u64,
    modified: Option<SystemTime>,
    identity: (u64, u64),
}

impl Mapped {
    /// Maps `path` read-only. Only regular files are accepted.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::from(e).in_file(&path))?;
        let meta = file.metadata().map_err(|e| Error::from(e).in_file(&path))?;
        if !meta.is_file() {
            return Err(
                Error::new(ErrorKind::UnknownFormat("not a regular file".into())).in_file(&path),
            );
        }
        let len = meta.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only and private to this process. Another process that
            // truncates or rewrites the file while we read it can still change what we see (or
            // raise SIGBUS); `ensure_unchanged` detects size and mtime changes at the end of a run,
            // which is the documented F6 policy.
            #[allow(unsafe_code)]
            let m = unsafe { Mmap::map(&file) }.map_err(|e| Error::from(e).in_file(&path))?;
            Some(m)
        };
        Ok(Mapped {
            path,
            map,
            len,
            modified: meta.modified().ok(),
            identity: {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            },
        })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// File length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Device and inode of the file as opened.
    pub fn identity(&self) -> (u64, u64) {
        self.identity
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Passes a hint about `start..start+len` to the OS (see [`Access`]): for `Soon`, start
    /// reading it into the page cache (`MADV_WILLNEED` queues the reads and returns); for
    /// `Done`, drop its pages from this process's resident set (the page cache keeps them).
    /// Only a hint; errors are ignored.
    pub fn advise(&self, start: u64, len: u64, access: Access) {
        let (Some(map), Ok(start), Ok(len)) =
            (&self.map, usize::try_from(start), usize::try_from(len))
        else {
            return;
        };
        let Some(end) = start.checked_add(len).filter(|&e| e <= map.len()) else {
            return;
        };
        if start == end {
            return;
        }
        match access {
            Access::Soon => {
                let _ = map.advise_range(memmap2::Advice::WillNeed, start, end - start);
            }
            // SAFETY: MADV_DONTNEED on a read-only file mapping only discards this process's
            // mappings of cached pages; a later access re-reads them from the file, so no data
            // the program relies on is lost.
            #[allow(unsafe_code)]
            Access::Done => unsafe {
                let _ = map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                );
            },
        }
    }

    /// Fails if the file's size or modification time changed since it was opened.
    pub fn ensure_unchanged(&self) -> Result<()> {
        let meta = std::fs::metadata(&self.path).map_err(|e| Error::from(e).in_file(&self.path))?;
        if meta.len() != self.len || meta.modified().ok() != self.modified {
            return Err(Error::new(ErrorKind::Output(
                "input changed while it was being read".into(),
            ))
            .in_file(&self.path));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_is_only_a_hint_whatever_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * 4096 + 17).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let m = Mapped::open(&path).unwrap();
        let len = data.len() as u64;
        let ranges = [
            (0, len),
            (5, 4000),
            (4097, 1),
            (len, 0),
            (len - 1, 2),
            (u64::MAX, 2),
        ];
        for access in [Access::Soon, Access::Done] {
            for (start, n) in ranges {
                m.advise(start, n, access);
                assert_eq!(m.bytes(), data, "{access:?} {start}+{n}");
            }
        }
        // An empty file has no map; advice is ignored.
        std::fs::write(&path, b"").unwrap();
        Mapped::open(&path).unwrap().advise(0, 1, Access::Soon);
    }
}
