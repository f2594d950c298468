//! `cargo xtask bench [--quick] [--size-gb N] [--only 2,6]`, or `bench --deepseek [--model M]` (the
//! real DeepSeek-V3 shapes, see [`deepseek`]): wharf's throughput and peak RSS as ratios against
//! reference tools run side by side on generated inputs (`xtask/scripts/bench.py`).
//!
//! Builds the release `wharf`, reuses the interop venv (`target/interop-venv`, llama-cpp-python
//! and numpy), regenerates `target/bench-work/` and prints five tables: 1 hashing (`wharf
//! verify` vs `sha256sum`), 2 GGUF quantization (vs `llama_model_quantize`, byte comparison), 3
//! the reference forward pass (vs llama.cpp, 2 threads), 4 FP8-block / MLX quantization (vs `cat`
//! and a memory-bandwidth probe), 5 export to pi5 and h800 (peak RSS, hashing share).
//! `--quick` uses only the SmolLM2-135M-shaped model (a few minutes); otherwise sections 4 and 5
//! also run on a generated llama folder of about N GB BF16 (default 1); `--only` runs the listed
//! sections (6 is the streaming HF -> GGUF convert). Not part of `ci`.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{cargo, root, run, venv};

pub fn bench(args: &[String]) -> Result<()> {
    if args.first().map(String::as_str) == Some("--deepseek") {
        return deepseek(&args[1..]);
    }
    let mut quick = false;
    let mut size_gb = String::from("1");
    let mut only = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--size-gb" => match it.next().map(|s| (s, s.parse::<f64>())) {
                Some((s, Ok(n))) if n > 0.0 => size_gb.clone_from(s),
                _ => bail!("--size-gb needs a positive number"),
            },
            "--only" => match it.next() {
                Some(s)
                    if s.split(',')
                        .all(|n| matches!(n, "1" | "2" | "3" | "4" | "5" | "6")) =>
                {
                    only = Some(s.clone());
                }
                _ => bail!("--only needs section numbers 1-6, comma-separated"),
            },
            other => bail!(
                "unknown bench argument {other:?} (usage: bench [--quick] [--size-gb N] [--only 2,6])"
            ),
        }
    }
    run(cargo().args(["build", "--release", "--locked", "-p", "wharf-cli"]))?;
    let venv = venv()?;
    let root = root();
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.arg(root.join("xtask/scripts/bench.py"))
        .arg("--wharf")
        .arg(root.join("target/release/wharf"))
        .arg("--work")
        .arg(root.join("target/bench-work"))
        .args(["--size-gb", &size_gb]);
    if quick {
        cmd.arg("--quick");
    }
    if let Some(o) = only {
        cmd.args(["--only", &o]);
    }
    run(&mut cmd)
}

/// `bench --deepseek [--model v3|kimi-k2|dense] [--only LABELS]`: every path on a checkpoint of
/// DeepSeek-V3's real shapes (`xtask/scripts/bench_deepseek.py`), generated once into
/// `target/bench-deepseek/` (about 32 GB; the outputs need about 30 GB more).
fn deepseek(args: &[String]) -> Result<()> {
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--model" => match it.next() {
                Some(m) => rest.extend(["--model".to_owned(), m.clone()]),
                None => bail!("--model needs v3, kimi-k2 or dense"),
            },
            "--only" => match it.next() {
                Some(s) => rest.extend(["--only".to_owned(), s.clone()]),
                None => bail!("--only needs command labels, comma-separated"),
            },
            other => bail!(
                "unknown bench argument {other:?} (usage: bench --deepseek [--model v3|kimi-k2|dense] [--only LABELS])"
            ),
        }
    }
    run(cargo().args(["build", "--release", "--locked", "-p", "wharf-cli"]))?;
    let venv = venv()?;
    let root = root();
    run(Command::new(venv.join("bin/python"))
        .arg(root.join("xtask/scripts/bench_deepseek.py"))
        .arg("--wharf")
        .arg(root.join("target/release/wharf"))
        .arg("--work")
        .arg(root.join("target/bench-deepseek"))
        .args(&rest))
}
