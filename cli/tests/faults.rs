//! Long runs meet full disks and killed processes (RELIABILITY.md, issue 17): a disk too small
//! fails with one sentence naming the output and the bytes it needs and leaves nothing behind;
//! a run killed with SIGKILL at any point leaves nothing at the output path but its temps,
//! which the next run into the same folder removes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures/models")
        .join(p)
}

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_wharf")
}

/// Runs `args` with a tmpfs of `size` mounted at `dir`, in a private mount namespace
/// (`unshare`, util-linux: as root, or through a user namespace): stdout is wharf's exit code
/// and then what the tmpfs holds afterwards; stderr is wharf's.
fn on_small_disk(dir: &Path, size: &str, args: &[&str]) -> (i32, Vec<String>, String) {
    let script = format!(
        "mount -t tmpfs -o size={size} tmpfs '{d}' || exit 99; \
         \"$0\" \"$@\"; echo \"rc=$?\"; ls -A '{d}'",
        d = dir.display()
    );
    let o = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script, exe()])
        .args(args)
        .output()
        .expect("unshare (util-linux) runs the test in a private mount namespace");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_ne!(o.status.code(), Some(99), "cannot mount a tmpfs: {err}");
    let mut lines = out.lines();
    let rc = lines
        .next()
        .and_then(|l| l.strip_prefix("rc="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}\n{err}"));
    (rc, lines.map(str::to_owned).collect(), err)
}

#[test]
fn a_full_disk_names_the_output_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let src = fixture("deepseek_v3");
    let src = src.to_str().unwrap();
    let gguf = format!("{d}/out.gguf");
    let mlx = format!("{d}/mlx");
    let bundle = format!("{d}/bundle");
    let cases: [&[&str]; 3] = [
        &["quantize", src, "-o", &gguf, "--scheme", "gguf:Q8_0"],
        &["quantize", src, "-o", &mlx, "--scheme", "mlx4"],
        &["export", src, "--target", "pi5", "-o", &bundle],
    ];
    for args in cases {
        let (rc, left, err) = on_small_disk(dir.path(), "256k", args);
        assert_eq!(rc, 2, "{args:?}: {err}");
        assert!(err.contains("no space left for"), "{args:?}: {err}");
        assert!(err.contains(" bytes"), "{args:?}: {err}");
        assert!(
            !err.contains(".wharf-"),
            "the user's path, not a temp: {err}"
        );
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
}

/// One full run's output, and how long it took.
fn reference(args: &dyn Fn(&str) -> Vec<String>, dir: &Path) -> (Vec<u8>, Duration) {
    let out = dir.join("ref.gguf");
    let t = Instant::now();
    let o = Command::new(exe())
        .args(args(out.to_str().unwrap()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (std::fs::read(&out).unwrap(), t.elapsed())
}

fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".wharf-"))
        .collect()
}

#[test]
fn a_killed_run_leaves_nothing_and_the_next_one_cleans_up() {
    let src = fixture("deepseek_v3");
    let args = |out: &str| -> Vec<String> {
        [
            "quantize",
            src.to_str().unwrap(),
            "-o",
            out,
            "--scheme",
            "gguf:Q4_K_M",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let scratch = tempfile::tempdir().unwrap();
    let (want, took) = reference(&args, scratch.path());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.gguf");
    let mut left_behind = 0;
    for k in 0..10u32 {
        let mut child = Command::new(exe())
            .args(args(out.to_str().unwrap()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill points spread over the whole run, from before its first write to its rename.
        std::thread::sleep(took.mul_f64(f64::from(k) / 9.0));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if out.exists() {
            assert!(
                std::fs::read(&out).unwrap() == want,
                "kill {k}: a partial output"
            );
            std::fs::remove_file(&out).unwrap();
        }
        left_behind += temps(dir.path()).len();
    }
    assert!(
        left_behind > 0,
        "no kill landed mid-write (run took {took:?})"
    );
    let stale = temps(dir.path());
    let o = Command::new(exe())
        .args(args(out.to_str().unwrap()))
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for t in &stale {
        assert!(
            err.contains(t.as_str()),
            "`{t}` removed without a word: {err}"
        );
    }
    assert_eq!(temps(dir.path()), Vec::<String>::new());
    assert!(std::fs::read(&out).unwrap() == want);
}
