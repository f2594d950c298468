//! `cargo xtask fuzz [SECONDS] [TARGET...]`: runs each fuzz target of `fuzz/` for SECONDS
//! (default 60) with its seed corpus plus the committed attack files, and reports executions.
//! What the fuzzer grows goes to `fuzz/corpus-work/` (ignored by git).
//!
//! cargo-fuzz needs a nightly toolchain; like rust-analyzer's `run_fuzzer`, this checks for it
//! and says how to get it instead of failing obscurely. CI does not fuzz; a stable `#[test]`
//! (`converters/tests/fuzz_corpus.rs`) replays the corpus and every attack file.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The targets of `fuzz/Cargo.toml`.
const TARGETS: [&str; 7] = [
    "safetensors_header",
    "gguf",
    "shard_index",
    "torch_zip",
    "pickle",
    "onnx",
    "manifest",
];

fn nightly(root: &Path) -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly", "cargo"])
        .current_dir(root.join("fuzz"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC");
    c
}

fn preflight(root: &Path) -> Result<()> {
    let ok = nightly(root)
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        bail!(
            "cargo fuzz needs a nightly toolchain and cargo-fuzz: \
             `rustup toolchain install nightly && cargo install cargo-fuzz`"
        );
    }
    Ok(())
}

pub fn fuzz(root: &Path, args: &[String]) -> Result<()> {
    let secs: u64 = match args.first() {
        Some(s) => s.parse().context("SECONDS must be a number")?,
        None => 60,
    };
    let chosen: Vec<&str> = if args.len() > 1 {
        args.iter().skip(1).map(String::as_str).collect()
    } else {
        TARGETS.to_vec()
    };
    preflight(root)?;
    let mut report = Vec::new();
    for t in chosen {
        // libFuzzer writes new inputs into the first folder: a work corpus kept out of git, so
        // the committed seeds (`fuzz/corpus/<target>`) stay a small, reviewed set.
        let work = root.join("fuzz/corpus-work").join(t);
        std::fs::create_dir_all(&work)?;
        let seeds = root.join("fuzz/corpus").join(t);
        let attacks = root.join("tests/data/attacks");
        let mut cmd = nightly(root);
        cmd.args(["fuzz", "run", t])
            .arg(&work)
            .args(seeds.is_dir().then_some(&seeds))
            .args(attacks.is_dir().then_some(&attacks))
            .args([
                "--",
                &format!("-max_total_time={secs}"),
                "-rss_limit_mb=2048",
                "-max_len=65536",
                "-print_final_stats=1",
            ]);
        eprintln!("xtask: {cmd:?}");
        let out = cmd
            .output()
            .with_context(|| format!("running fuzz target {t}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let execs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map_or_else(|| "?".into(), |s| s.trim().to_owned());
        if !out.status.success() {
            eprintln!("{log}");
            bail!("fuzz target {t} failed after {execs} executions; see fuzz/artifacts/{t}");
        }
        report.push(format!(
            "{t:<20} {secs:>6} s {execs:>12} executions, no crash"
        ));
    }
    println!("{}", report.join("\n"));
    Ok(())
}
