//! What a killed run leaves, and a full disk.
//!
//! Every output is written to a temp sibling named `.{target}.wharf-{pid}-{n}.tmp` (a file) or
//! `.tmpdir` (a folder) and renamed into place (`atomic.rs`), so a run killed with SIGKILL, or
//! a machine that lost power, leaves nothing at the output path, only such a temp. The next
//! run that writes into the same folder removes the temps whose process is gone (no process of
//! that id, or one running another program: the id was reused) and records them for the CLI to
//! report ([`take_removed`]); a temp of a live wharf run writing there too is left alone.
//!
//! A disk that cannot hold an output is found before its bytes are computed where the file
//! system can reserve them (`posix_fallocate`), and named with the bytes needed and free; a
//! write that fails for lack of space later says the same.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Stale temps removed by this process, not yet reported.
static REMOVED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The process id in a wharf temp's name, if `name` is one.
pub(crate) fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let rest = rest
        .strip_suffix(".tmp")
        .or_else(|| rest.strip_suffix(".tmpdir"))?;
    let (_, tail) = rest.rsplit_once(".wharf-")?;
    let (pid, n) = tail.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// The path a user asked for, for a path inside (or of) a wharf temp: `.out.wharf-1-0.tmpdir/f`
/// is shown as `out/f`.
pub fn shown(path: &Path) -> PathBuf {
    path.components()
        .map(|c| {
            let s = c.as_os_str().to_string_lossy();
            match temp_owner(&s) {
                Some(_) => {
                    let inner = s.trim_start_matches('.');
                    let cut = inner.rfind(".wharf-").unwrap_or(inner.len());
                    inner[..cut].to_owned()
                }
                None => s.into_owned(),
            }
        })
        .collect()
}

/// Whether process `pid` is gone, or now runs a program of another name than this one (its
/// id was reused).
#[cfg(target_os = "linux")]
fn gone(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let exe = |p: &str| fs::read_link(format!("/proc/{p}/exe")).ok();
    match (exe(&pid.to_string()), exe("self")) {
        (None, _) => !Path::new(&format!("/proc/{pid}")).exists(),
        (Some(theirs), Some(ours)) => theirs.file_name() != ours.file_name(),
        (Some(_), None) => false,
    }
}

/// Elsewhere no temp is taken for stale: they are left for the user.
#[cfg(not(target_os = "linux"))]
fn gone(_pid: u32) -> bool {
    false
}

/// Removes the temps in `dir` left by wharf runs whose process is gone; returns them.
pub fn clean_stale(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        if !gone(pid) {
            continue;
        }
        let path = e.path();
        let ok = match e.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path).is_ok(),
            Ok(_) => fs::remove_file(&path).is_ok(),
            Err(_) => false,
        };
        if ok {
            removed.push(path);
        }
    }
    if let Ok(mut r) = REMOVED.lock() {
        r.extend(removed.iter().cloned());
    }
    removed
}

/// The stale temps removed since the last call (for the CLI to report).
pub fn take_removed() -> Vec<PathBuf> {
    REMOVED
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default()
}

/// Free bytes for an unprivileged writer on the file system holding `path`.
#[cfg(target_os = "linux")]
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `s` points to writable memory the size of
    // a statvfs, which the call fills on success (checked before it is read).
    #[allow(unsafe_code)]
    let s = unsafe {
        if libc::statvfs(c.as_ptr(), s.as_mut_ptr()) != 0 {
            return None;
        }
        s.assume_init()
    };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}

/// Elsewhere the free space is not asked for.
#[cfg(not(target_os = "linux"))]
pub fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// Whether `e` is the file system running out of space (or quota).
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// `e` (a lack of space) as an error naming the output, what it needs and what is free.
pub fn no_space(e: &io::Error, target: &Path, needed: Option<u64>, written: u64) -> io::Error {
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let free = free_bytes(dir).map_or(String::new(), |f| format!(", {f} bytes free there"));
    let need = match needed {
        Some(n) if written > 0 => format!(
            "it needs {n} bytes, {} more than the {written} written",
            n.saturating_sub(written)
        ),
        Some(n) => format!("it needs {n} bytes"),
        None => format!("{written} bytes were written when the disk filled"),
    };
    io::Error::new(
        e.kind(),
        format!(
            "no space left for {}: {need}{free}",
            shown(target).display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_give_their_process() {
        assert_eq!(temp_owner(".model.gguf.wharf-1234-0.tmp"), Some(1234));
        assert_eq!(temp_owner(".out.wharf-77-12.tmpdir"), Some(77));
        assert_eq!(temp_owner(".a.wharf-b.wharf-9-1.tmp"), Some(9));
        assert_eq!(temp_owner("model.gguf"), None);
        assert_eq!(temp_owner(".x.wharf-12.tmp"), None);
        assert_eq!(temp_owner(".x.wharf-a-1.tmp"), None);
    }

    #[test]
    fn a_temp_path_shows_as_its_target() {
        let p = Path::new("/x/.bundle.wharf-12-3.tmpdir/model.safetensors");
        assert_eq!(shown(p), Path::new("/x/bundle/model.safetensors"));
        assert_eq!(
            shown(Path::new("out/.q.gguf.wharf-1-0.tmp")),
            Path::new("out/q.gguf")
        );
    }

    #[test]
    fn temps_of_gone_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // Process ids above the kernel's limit (4194304) never exist.
        let dead = dir.path().join(".m.gguf.wharf-99999999-0.tmp");
        let dead_dir = dir.path().join(".bundle.wharf-99999998-3.tmpdir");
        let ours = dir
            .path()
            .join(format!(".n.gguf.wharf-{}-0.tmp", std::process::id()));
        let other = dir.path().join("keep.gguf");
        fs::write(&dead, b"x").unwrap();
        fs::create_dir(&dead_dir).unwrap();
        fs::write(dead_dir.join("f"), b"y").unwrap();
        fs::write(&ours, b"z").unwrap();
        fs::write(&other, b"w").unwrap();
        let mut removed = clean_stale(dir.path());
        removed.sort();
        assert_eq!(removed, vec![dead_dir.clone(), dead.clone()]);
        assert!(!dead.exists() && !dead_dir.exists());
        assert!(ours.exists() && other.exists());
        assert!(take_removed().contains(&dead));
    }
}
