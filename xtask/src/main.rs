//! Project automation: `cargo xtask ci` is what CI runs (`.ci/run`) and what a newcomer runs.
//!
//! - `ci`: `cargo fmt --check`, `cargo clippy -D warnings`, every test, then `interop`.
//! - `interop`: builds wharf, creates `target/interop-venv` with the pinned real consumers
//!   (`xtask/requirements.txt`, and `llama-gguf-split` compiled from the pinned llama-cpp-python
//!   sdist), and runs `xtask/scripts/interop.py` against wharf's outputs.
//! - `fuzz [SECONDS] [TARGET...]`: the `fuzz/` targets under cargo-fuzz (nightly).
//! - `bench [--quick] [--size-gb N]`: throughput and peak RSS against llama.cpp, `sha256sum` and
//!   `cat`, side by side on generated models (`bench.rs`; `--quick` takes a few minutes). Not in `ci`.

// Printing progress is this crate's job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
mod fuzz;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn ci() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args(["test", "--workspace", "--locked"]))?;
    interop()
}

/// A venv with the pinned requirements; reused while `requirements.txt` is unchanged.
fn venv() -> Result<PathBuf> {
    let root = root();
    let dir = root.join("target/interop-venv");
    let req = root.join("xtask/requirements.txt");
    let stamp = dir.join("requirements.stamp");
    let wanted = std::fs::read_to_string(&req)?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(dir);
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(python)
        .args(["-m", "venv", "--clear"])
        .arg(&dir))?;
    let pip = dir.join("bin/pip");
    run(Command::new(&pip).args(["install", "--quiet", "--upgrade", "pip"]))?;
    run(Command::new(&pip)
        .args(["install", "--quiet", "-r"])
        .arg(&req)
        // No native build flags, so the library matches the reference vectors on any x86-64.
        .env("CMAKE_ARGS", "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF")
        .env("CMAKE_BUILD_PARALLEL_LEVEL", "2"))?;
    std::fs::write(&stamp, wanted)?;
    Ok(dir)
}

/// `llama-gguf-split`, the reference for split GGUF output, compiled into the venv from the
/// pinned llama-cpp-python sdist against the libraries it installed (seconds; `scripts/build_gguf_split.py`).
fn gguf_split(venv: &Path) -> Result<()> {
    let bin = venv.join("bin/llama-gguf-split");
    if bin.is_file() {
        return Ok(());
    }
    run(Command::new(venv.join("bin/python"))
        .arg(root().join("xtask/scripts/build_gguf_split.py"))
        .arg(&bin))
}

fn interop() -> Result<()> {
    run(cargo().args(["build", "--release", "--locked", "-p", "wharf-cli"]))?;
    let venv = venv()?;
    gguf_split(&venv)?;
    let root = root();
    let work = tempfile_dir(&root)?;
    run(Command::new(venv.join("bin/python"))
        .arg(root.join("xtask/scripts/interop.py"))
        .arg("--wharf")
        .arg(root.join("target/release/wharf"))
        .arg("--fixtures")
        .arg(root.join("tests/data/fixtures"))
        .arg("--work")
        .arg(&work))?;
    ggml_soak(&venv, &work)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Fresh random rows (and edge rows) quantized by libggml itself, compared byte for byte with
/// wharf's codecs for every GGML type, with and without an importance matrix.
fn ggml_soak(venv: &Path, work: &Path) -> Result<()> {
    let root = root();
    let file = work.join("ggml_soak.safetensors");
    run(Command::new(venv.join("bin/python"))
        .arg(root.join("xtask/scripts/gen_ggml_vectors.py"))
        .arg(&file)
        .args(["--fuzz", "200"]))?;
    run(cargo()
        .args([
            "test",
            "--release",
            "--locked",
            "-p",
            "wharf-quantizers",
            "--test",
            "ggml_testvec",
        ])
        .args(["extra_vectors_match_libggml", "--", "--exact"])
        .env("WHARF_GGML_VECTORS", &file))
}

fn tempfile_dir(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/interop-work");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("interop") => interop(),
        Some("fuzz") => fuzz::fuzz(&root(), &args[1..]),
        Some("bench") => bench::bench(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|interop|fuzz [SECONDS] [TARGET...]|bench [--quick] [--size-gb N]>"
            );
            std::process::exit(2);
        }
    }
}
