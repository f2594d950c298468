//! Output that appears whole or not at all: a temp file (or folder) beside the target, fsync,
//! rename, fsync of the parent folder. Dropping an uncommitted output removes the temp.
//! A file is written around the page cache where the file system allows (`direct.rs`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::direct::DirectOut;
use crate::error::{Error, ErrorKind, Result};
use crate::leftovers::no_space;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A callback that sees every byte written, in order (streaming hashes use it).
pub type Tap = Box<dyn FnMut(&[u8]) + Send>;

/// Bytes written between two starts of early writeback.
const WRITEBACK_EVERY: u64 = 32 << 20;

/// How a temp file's bytes reach the disk.
enum Out {
    /// Straight from an aligned stage, the unaligned tail at the end (`direct.rs`).
    Direct(DirectOut),
    /// Through the page cache: where direct I/O is unavailable, and after a seek.
    Buffered(BufWriter<File>),
}

/// `file` written through a 1 MiB buffer.
fn buffered(file: File) -> BufWriter<File> {
    BufWriter::with_capacity(1 << 20, file)
}

impl Out {
    /// Everything written so far handed to the file, and the file, its cursor at the end.
    fn into_file(self) -> io::Result<File> {
        match self {
            Out::Direct(d) => d.finish(),
            Out::Buffered(b) => b.into_inner().map_err(|e| e.into_error()),
        }
    }
}

/// Early writeback for buffered output: the disk writes a large output while the rest is
/// being made, so the fsync of [`AtomicFile::commit`] has little left to wait for.
mod writeback {
    use std::fs::File;

    /// Starts (does not wait for) writeback of the file's dirty pages. Only a hint.
    #[cfg(target_os = "linux")]
    pub fn start(file: &File) {
        use std::os::fd::AsRawFd;
        // SAFETY: sync_file_range only reads its integer arguments; the descriptor is open for
        // as long as `file` is borrowed. Offset 0 and length 0 mean the whole file.
        #[allow(unsafe_code)]
        let _ =
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }

    /// Elsewhere the final fsync does all the writing.
    #[cfg(not(target_os = "linux"))]
    pub fn start(_file: &File) {}
}

fn temp_sibling(target: &Path, kind: &str) -> Result<PathBuf> {
    let name = target.file_name().ok_or_else(|| {
        Error::new(ErrorKind::Output(format!(
            "{} has no file name",
            target.display()
        )))
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(
        ".{}.wharf-{}-{n}.{kind}",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(target.with_file_name(tmp))
}

/// Reserves `len` bytes for `file` (`posix_fallocate`): an error only for a lack of space; a
/// file system that cannot reserve is written without.
#[cfg(target_os = "linux")]
fn reserve(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let Ok(len) = libc::off_t::try_from(len) else {
        return Ok(());
    };
    if len == 0 {
        return Ok(());
    }
    // SAFETY: posix_fallocate reads its integer arguments only; the descriptor is open for as
    // long as `file` is borrowed.
    #[allow(unsafe_code)]
    let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    let e = io::Error::from_raw_os_error(r);
    match r {
        0 => Ok(()),
        _ if crate::leftovers::is_no_space(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Elsewhere nothing is reserved; a full disk shows at the write that fails.
#[cfg(not(target_os = "linux"))]
fn reserve(_file: &File, _len: u64) -> io::Result<()> {
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename durable by syncing the folder that holds it.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::from(e).in_file(dir))
}

/// A file written beside its target and renamed into place on [`AtomicFile::commit`].
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    /// The size announced at creation (space reserved for it where the file system can).
    len: Option<u64>,
    out: Option<Out>,
    tap: Option<Tap>,
    written: u64,
    /// `written` when writeback was last started.
    kicked: u64,
    /// Renamed into place, or handed to a [`Sealed`]: nothing left for this to clean up.
    committed: bool,
}

impl std::fmt::Debug for AtomicFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicFile")
            .field("target", &self.target)
            .field("tmp", &self.tmp)
            .finish()
    }
}

impl AtomicFile {
    /// Starts writing `target`. An existing folder at `target` is refused; an existing file is
    /// replaced atomically on commit. Temps of killed runs beside it are removed first
    /// (`leftovers.rs`).
    pub fn create(target: impl AsRef<Path>) -> Result<Self> {
        Self::create_sized(target, None)
    }

    /// [`AtomicFile::create`] for a file of `len` bytes, known up front: the space is reserved
    /// now where the file system can, so a disk too small fails before anything is computed,
    /// naming the file and the bytes it needs.
    pub fn create_sized(target: impl AsRef<Path>, len: Option<u64>) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        if target.is_dir() {
            return Err(Error::new(ErrorKind::Output(format!(
                "{} is a folder",
                target.display()
            ))));
        }
        crate::leftovers::clean_stale(parent_of(&target));
        let tmp = temp_sibling(&target, "tmp")?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::from(e).in_file(&tmp))?;
        if let Some(n) = len
            && let Err(e) = reserve(&file, n)
        {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Err(no_space(&e, &target, len, 0).into());
        }
        let out = match crate::direct::open(&tmp, OpenOptions::new().write(true)) {
            Some(direct) => {
                let d = DirectOut::new(file, Some(direct)).map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    Error::from(e).in_file(&tmp)
                })?;
                Out::Direct(d)
            }
            None => Out::Buffered(buffered(file)),
        };
        Ok(AtomicFile {
            target,
            tmp,
            len,
            out: Some(out),
            tap: None,
            written: 0,
            kicked: 0,
            committed: false,
        })
    }

    /// Calls `tap` with every byte written from now on.
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = Some(tap);
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes, syncs and renames into place, then syncs the folder.
    pub fn commit(self) -> Result<()> {
        self.seal()?.commit()
    }

    /// Flushes, syncs and closes the temp without renaming it: for outputs of several files
    /// that appear together ([`Sealed::commit`] each once all are sealed).
    pub fn seal(mut self) -> Result<Sealed> {
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("output closed"))?;
        let (target, len, written) = (&self.target, self.len, self.written);
        let full = |e: io::Error| match crate::leftovers::is_no_space(&e) {
            true => Error::from(no_space(&e, target, len, written)),
            false => Error::from(e).in_file(&self.tmp),
        };
        let file = out.into_file().map_err(full)?;
        if len.is_some_and(|n| n > written) {
            file.set_len(written).map_err(full)?; // space reserved for more than was written
        }
        file.sync_all().map_err(full)?;
        drop(file);
        self.committed = true; // the temp now belongs to the Sealed
        Ok(Sealed {
            target: self.target.clone(),
            tmp: self.tmp.clone(),
            done: false,
        })
    }
}

/// A complete, synced temp file waiting to be renamed into place; dropped, it is removed.
#[derive(Debug)]
pub struct Sealed {
    target: PathBuf,
    tmp: PathBuf,
    done: bool,
}

impl Sealed {
    /// Renames into place, then syncs the folder.
    pub fn commit(mut self) -> Result<()> {
        fs::rename(&self.tmp, &self.target).map_err(|e| Error::from(e).in_file(&self.target))?;
        self.done = true;
        sync_dir(parent_of(&self.target))
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| io::Error::other("output closed"))?;
        let n = match out {
            Out::Direct(d) => d.write(buf),
            Out::Buffered(b) => b.write(buf),
        };
        let n = n.map_err(|e| match crate::leftovers::is_no_space(&e) {
            true => no_space(&e, &self.target, self.len, self.written),
            false => e,
        })?;
        if let (Some(tap), Some(done)) = (self.tap.as_mut(), buf.get(..n)) {
            tap(done);
        }
        self.written += n as u64;
        if self.written - self.kicked >= WRITEBACK_EVERY {
            self.kicked = self.written;
            if let Some(Out::Buffered(b)) = self.out.as_ref() {
                writeback::start(b.get_ref());
            }
        }
        Ok(n)
    }

    /// Buffered output is flushed into the file; staged direct output is written at commit,
    /// when the unaligned tail is known.
    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(Out::Buffered(b)) => b.flush(),
            _ => Ok(()),
        }
    }
}

/// Seeking is for container writers that patch headers (zip); a tapped file refuses it, since
/// the tap must see the bytes in file order.
impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        if self.tap.is_some() {
            return Err(io::Error::other("cannot seek a tapped output"));
        }
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("output closed"))?;
        // Direct output is written in order only; a patched file goes on through the cache.
        let mut b = match out {
            Out::Direct(d) => buffered(d.finish()?),
            Out::Buffered(b) => b,
        };
        let at = b.seek(pos);
        self.out = Some(Out::Buffered(b));
        at
    }
}

/// An output not renamed into place leaves nothing: not after an error in `commit` or `seek`,
/// nor when dropped half written.
impl Drop for AtomicFile {
    fn drop(&mut self) {
        drop(self.out.take());
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A folder built beside its target and renamed into place on [`AtomicDir::commit`].
#[derive(Debug)]
pub struct AtomicDir {
    target: PathBuf,
    tmp: PathBuf,
    done: bool,
}

impl AtomicDir {
    /// Starts building `target`, which must not exist (an empty folder is accepted and replaced).
    pub fn create(target: impl AsRef<Path>) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        if let Ok(meta) = fs::symlink_metadata(&target) {
            let empty_dir = meta.is_dir()
                && fs::read_dir(&target)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
            if !empty_dir {
                return Err(Error::new(ErrorKind::Output(format!(
                    "{} already exists; remove it or choose another output",
                    target.display()
                ))));
            }
        }
        crate::leftovers::clean_stale(parent_of(&target));
        let tmp = temp_sibling(&target, "tmpdir")?;
        fs::create_dir(&tmp).map_err(|e| Error::from(e).in_file(&tmp))?;
        Ok(AtomicDir {
            target,
            tmp,
            done: false,
        })
    }

    /// Where to write the folder's files now.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs the folder and renames it into place.
    pub fn commit(mut self) -> Result<()> {
        sync_dir(&self.tmp)?;
        if self.target.is_dir() {
            fs::remove_dir(&self.target).map_err(|e| Error::from(e).in_file(&self.target))?;
        }
        fs::rename(&self.tmp, &self.target).map_err(|e| Error::from(e).in_file(&self.target))?;
        self.done = true;
        sync_dir(parent_of(&self.target))
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Refuses an output path that is one of the inputs (or the same file under another name).
pub fn ensure_not_input(output: &Path, inputs: &[PathBuf]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(out) = fs::metadata(output) else {
        return Ok(());
    };
    for input in inputs {
        if let Ok(m) = fs::metadata(input)
            && m.dev() == out.dev()
            && m.ino() == out.ino()
        {
            return Err(Error::new(ErrorKind::Output(format!(
                "{} is an input of this command",
                output.display()
            ))));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        {
            let mut f = AtomicFile::create(&target).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert!(!target.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn committed_file_replaces_target_and_taps_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        fs::write(&target, b"old").unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut f = AtomicFile::create(&target).unwrap();
        let s = seen.clone();
        f.set_tap(Box::new(move |b| s.lock().unwrap().extend_from_slice(b)));
        f.write_all(b"new bytes").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new bytes");
        assert_eq!(&*seen.lock().unwrap(), b"new bytes");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_past_the_writeback_step_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("big.bin");
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let n = (WRITEBACK_EVERY >> 20) as usize + 3;
        let mut f = AtomicFile::create(&target).unwrap();
        (0..n).for_each(|_| f.write_all(&chunk).unwrap());
        f.commit().unwrap();
        let back = fs::read(&target).unwrap();
        assert_eq!(back.len(), n << 20);
        assert!(back.chunks(1 << 20).all(|c| c == chunk.as_slice()));
    }

    #[test]
    fn a_patched_file_keeps_its_direct_bytes() {
        // A zip writer seeks back to patch headers: the staged direct bytes must be in the
        // file first, and what follows the seek goes through the page cache.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("patched.bin");
        let data: Vec<u8> = (0..(9 << 20) + 123).map(|i| (i % 241) as u8).collect();
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(&data).unwrap();
        let end = f.stream_position().unwrap();
        assert_eq!(end, data.len() as u64);
        f.seek(SeekFrom::Start(5)).unwrap();
        f.write_all(b"PATCH").unwrap();
        f.seek(SeekFrom::End(0)).unwrap();
        f.write_all(b"tail").unwrap();
        f.commit().unwrap();
        let mut want = data;
        want[5..10].copy_from_slice(b"PATCH");
        want.extend_from_slice(b"tail");
        assert!(fs::read(&target).unwrap() == want);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dir_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("bundle");
        {
            let d = AtomicDir::create(&target).unwrap();
            fs::write(d.path().join("a"), b"x").unwrap();
        }
        assert!(!target.exists());
        let d = AtomicDir::create(&target).unwrap();
        fs::write(d.path().join("a"), b"x").unwrap();
        d.commit().unwrap();
        assert!(target.join("a").exists());
        assert!(matches!(
            AtomicDir::create(&target).unwrap_err().kind(),
            ErrorKind::Output(_)
        ));
    }

    #[test]
    fn refuses_to_overwrite_an_input() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, b"x").unwrap();
        let link = dir.path().join("b");
        fs::hard_link(&a, &link).unwrap();
        assert!(ensure_not_input(&link, std::slice::from_ref(&a)).is_err());
        assert!(ensure_not_input(&dir.path().join("c"), &[a]).is_ok());
    }
}
