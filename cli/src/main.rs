//! `wharf`: convert, quantize, package and verify language-model checkpoints.
//!
//! Exit codes (PRODUCT.md): 0 success; 1 a check or verification failed; 2 bad usage or bad
//! input, reported as one sentence on stderr naming the file, tensor and byte offset.

// Printing is this crate's job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod compare;
mod convert;
mod demo;
mod export;
mod infer;
mod inspect;
mod progress;
mod quantize;
mod quantize_hf;
mod split;
mod targets_cmd;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "wharf",
    version,
    about = "Ship a language-model checkpoint, verified, to the hardware it runs on"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Describe any supported file or folder: format, architecture, tensors, metadata.
    Inspect(inspect::Args),
    /// Change format losslessly (or widening): HF folder -> GGUF, GGUF -> safetensors, ...
    Convert(convert::Args),
    /// Quantize to a GGUF type as llama-quantize does (same per-tensor types, same bytes).
    Quantize(quantize::Args),
    /// The target profiles and what each produces.
    Targets(targets_cmd::Args),
    /// A complete, verified bundle for one target.
    Export(export::Args),
    /// Re-hash a bundle and re-run its reference check.
    Verify(verify::Args),
    /// Run the reference forward pass: logits, greedy continuation, optional .npy output.
    Infer(infer::Args),
    /// Compare two models' predictions on the same tokens (KL, top-1, perplexity, greedy).
    Compare(compare::Args),
    /// Run the main job on the embedded tiny model and check every output.
    Demo(demo::Args),
}

/// A failed check (exit 1), as opposed to bad input (exit 2).
#[derive(Debug)]
pub struct CheckFailed(pub String);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailed {}

/// Prints the reader's warnings about an input on stderr.
pub fn warn_source(src: &wharf_converters::AnySource) {
    for w in src.warnings() {
        eprintln!("wharf: warning: {w}");
    }
}

/// Writes `text` to stdout; a closed pipe (`wharf inspect X | head`) is not an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Targets(a) => targets_cmd::run(a),
        Command::Export(a) => export::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Infer(a) => infer::run(a),
        Command::Compare(a) => compare::run(a),
    };
    for stale in wharf_converters::leftovers::take_removed() {
        eprintln!(
            "wharf: removed {}, left by a wharf run that was killed",
            stale.display()
        );
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<CheckFailed>().is_some() => {
            eprintln!("wharf: check failed: {e:#}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("wharf: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
