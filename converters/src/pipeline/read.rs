//! Direct reads of the source tensors the maker decodes, on a thread ahead of it (the next
//! tensor, and more within [`READ_AHEAD`]), into buffers reused instead of the page cache.
//!
//! Reading a large source through the page cache allocates a fresh page-cache page per 4 KiB
//! read, and on this project's VMs (whose freed memory goes back to the host) that is most of
//! the cost: 4 GB read with `read()` took 14.5 s, 13.8 s of it system time, where `O_DIRECT`
//! reads into one reused buffer took 5.5 s with 0.25 s of system time. So each BF16 tensor the
//! maker decodes, stored as it is in a file and of [`SIZES`], is read here, in
//! plan order, with `O_DIRECT` where the file system allows (plain reads where not), into
//! reused buffers, up to [`READ_AHEAD`] bytes ahead of what the maker holds: the maker computes
//! on one tensor while the next ones are read. Everything else is read through the source's
//! map, as `ahead.rs` asks.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::ops::RangeInclusive;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};

use wharf_core::{DType, Stored, TensorSource};

use super::Planned;
use super::ahead::READ_AHEAD;
use crate::direct::{ALIGN, Block};
use crate::error::{Error, ErrorKind, Result};

/// Sizes of the tensors read this way. Smaller ones, one synchronous read each, would leave
/// the disk's queue shallow, where the kernel's read-ahead (`ahead.rs`) batches them; larger
/// ones go through the map so that no more than two such buffers are held.
pub(super) const SIZES: RangeInclusive<u64> = (4 << 20)..=(256 << 20);

/// Bytes asked for by one read call.
const READ_STEP: usize = 16 << 20;

/// One source tensor's bytes in a reused aligned buffer; dropping it hands the buffer back to
/// the reader.
pub(super) struct Buffer {
    blocks: Vec<Block>,
    start: usize,
    len: usize,
    home: Sender<(Vec<Block>, usize)>,
}

impl Buffer {
    /// The tensor's stored bytes.
    pub fn bytes(&self) -> &[u8] {
        let all: &[u8] = bytemuck::cast_slice(&self.blocks);
        &all[self.start..self.start + self.len]
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let _ = self.home.send((std::mem::take(&mut self.blocks), self.len));
    }
}

/// Per plan entry, where the reader reads its source: for an entry the maker decodes (not
/// `raw`) from a single BF16 tensor that the source stores as it is, unless the entry before
/// it was decoded from the same source (the maker reuses those values). The first such entry
/// is left to the map: the maker needs it at once, and through the map its computing starts
/// with its first pages instead of waiting for all of them.
pub(super) fn schedule(
    src: &dyn TensorSource,
    plan: &[Planned],
    raw: &[bool],
    sizes: RangeInclusive<u64>,
) -> Vec<Option<Stored>> {
    let decoded = |k: usize| !raw.get(k).copied().unwrap_or(true);
    let first = (0..plan.len()).find(|&k| decoded(k));
    plan.iter()
        .enumerate()
        .map(|(k, p)| {
            let reused = k > 0 && decoded(k - 1) && plan[k - 1].from == p.from;
            let [one] = p.from.as_slice() else {
                return None;
            };
            if !decoded(k) || reused || Some(k) == first {
                return None;
            }
            let meta = src.meta(one).filter(|m| m.dtype == DType::BF16)?;
            let s = src.stored(one)?;
            (Some(s.len) == meta.nbytes().ok() && sizes.contains(&s.len)).then_some(s)
        })
        .collect()
}

/// The reader's loop: reads each range in order and hands it over. It always reads the
/// tensor after the one the maker holds, and more while the buffers out stay within
/// [`READ_AHEAD`] bytes. Stops after the first error (handed over too) or once the maker is gone.
pub(super) fn run(ranges: Vec<Stored>, tx: Sender<Result<Buffer>>) {
    let (home, back) = mpsc::channel();
    let mut files = Files::default();
    let mut pool = Pool::default();
    for s in ranges {
        // A buffer comes back when the maker drops it, or when a stopped maker's channel
        // drops what it still held, so this wait always ends.
        while pool.count > 1 && pool.out + s.len > READ_AHEAD {
            match back.recv() {
                Ok(returned) => pool.put(returned),
                Err(_) => return,
            }
        }
        back.try_iter().for_each(|r| pool.put(r));
        let blocks = pool.take(&s);
        let read = files.read(&s, blocks).map(|(blocks, start)| Buffer {
            blocks,
            start,
            len: s.len as usize,
            home: home.clone(),
        });
        let failed = read.is_err();
        pool.out += s.len;
        pool.count += 1;
        if tx.send(read).is_err() || failed {
            return;
        }
    }
}

/// Buffers the maker gave back, and how many (and bytes of) those it still holds.
#[derive(Default)]
struct Pool {
    spare: Vec<Vec<Block>>,
    out: u64,
    count: usize,
}

impl Pool {
    /// Buffers kept for reuse; more are freed.
    const KEEP: usize = 4;

    fn put(&mut self, (blocks, len): (Vec<Block>, usize)) {
        self.out = self.out.saturating_sub(len as u64);
        self.count = self.count.saturating_sub(1);
        self.spare.push(blocks);
        self.spare.sort_by_key(Vec::len);
        if self.spare.len() > Self::KEEP {
            self.spare.remove(0);
        }
    }

    /// The smallest spare buffer that holds `s` (it may start mid-block), else the largest
    /// (to be grown), else a new one.
    fn take(&mut self, s: &Stored) -> Vec<Block> {
        let n = ((s.offset % ALIGN as u64) + s.len).div_ceil(ALIGN as u64) as usize;
        match self.spare.iter().position(|b| b.len() >= n) {
            Some(i) => self.spare.remove(i),
            None => self.spare.pop().unwrap_or_default(),
        }
    }
}

/// Reads `buf` from `at` on until `want` bytes are in or the file ends; returns the bytes read.
fn fill(input: &Input, buf: &mut [u8], at: u64, want: usize) -> io::Result<usize> {
    let mut got = 0;
    while got < want {
        let end = (got + READ_STEP).min(buf.len());
        let n = input.read_at(&mut buf[got..end], at + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// A source file opened for reading: directly until the file system refuses.
struct Input {
    direct: Option<File>,
    refused: AtomicBool,
    plain: File,
}

/// The source files opened so far, by path.
#[derive(Default)]
struct Files {
    open: HashMap<PathBuf, Input>,
}

impl Files {
    /// Reads `s` into `blocks` (grown if needed); returns them and where the bytes start.
    fn read(&mut self, s: &Stored, mut blocks: Vec<Block>) -> Result<(Vec<Block>, usize)> {
        let file = |e: io::Error| Error::from(e).in_file(&s.path);
        let input = self.input(s).map_err(file)?;
        let first = s.offset / ALIGN as u64 * ALIGN as u64;
        let start = (s.offset - first) as usize;
        let need = start + s.len as usize;
        let n = need.div_ceil(ALIGN);
        if blocks.len() < n {
            blocks.resize(n, Block([0; ALIGN]));
        }
        let buf: &mut [u8] = bytemuck::cast_slice_mut(&mut blocks[..n]);
        // Two reads in flight: the disk's queue stays busy between one read and the next.
        let half = (n / 2 * ALIGN).min(need);
        let (a, b) = buf.split_at_mut(half);
        let (first_half, second_half) = std::thread::scope(|t| {
            let other = t.spawn(|| fill(input, b, first + half as u64, need - half));
            let mine = fill(input, a, first, half);
            (
                mine,
                other
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("reader panicked"))),
            )
        });
        for (got, want, at) in [
            (first_half, half, first),
            (second_half, need - half, first + half as u64),
        ] {
            let got = got.map_err(file)?;
            if got < want {
                let e = ErrorKind::Truncated {
                    need: s.offset + s.len,
                    have: at + got as u64,
                };
                return Err(Error::new(e).in_file(&s.path).at(at + got as u64));
            }
        }
        Ok((blocks, start))
    }

    /// The open file for `s`, opened now if needed and checked to be the file the source
    /// opened.
    fn input(&mut self, s: &Stored) -> io::Result<&Input> {
        if !self.open.contains_key(&s.path) {
            let plain = File::open(&s.path)?;
            use std::os::unix::fs::MetadataExt;
            let m = plain.metadata()?;
            if s.identity.is_some_and(|id| id != (m.dev(), m.ino())) {
                return Err(io::Error::other("input changed while it was being read"));
            }
            let direct = crate::direct::open(&s.path, std::fs::OpenOptions::new().read(true));
            let refused = AtomicBool::new(false);
            let input = Input {
                direct,
                refused,
                plain,
            };
            self.open.insert(s.path.clone(), input);
        }
        self.open
            .get(&s.path)
            .ok_or_else(|| io::Error::other("input not open"))
    }
}

impl Input {
    /// One read at `at` (aligned), directly unless the file system refuses.
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        loop {
            let direct = self.direct.as_ref();
            let direct = direct.filter(|_| !self.refused.load(Ordering::Relaxed));
            let read = match direct {
                Some(d) => d.read_at(buf, at),
                None => self.plain.read_at(buf, at),
            };
            match read {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Opened for direct I/O, but the file system will not do it: read through
                // the cache from here on.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput && direct.is_some() => {
                    self.refused.store(true, Ordering::Relaxed)
                }
                other => return other,
            }
        }
    }
}
