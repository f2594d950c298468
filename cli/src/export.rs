//! `wharf export SRC --target T -o DIR [--zip] [--scheme S] [--ctx N] [--memory M]
//! [--ids ... | --prompt TEXT] [--force]`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use wharf_targets::export::{ExportOptions, export_with_progress};
use wharf_targets::preflight::{human, parse_memory};

use crate::CheckFailed;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source: HF folder (safetensors or PyTorch), GGUF, or ONNX export with --config.
    src: PathBuf,
    /// The HF `config.json` of an ONNX export: its initializers are read under HF names
    /// (tokenizer files are taken from the config's folder).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Target profile (see `wharf targets`).
    #[arg(long)]
    target: String,
    /// Output bundle folder (or zip file with --zip).
    #[arg(short, long)]
    output: PathBuf,
    /// Write one deterministic zip instead of a folder.
    #[arg(long)]
    zip: bool,
    /// Scheme other than the target's default (must fit the target).
    #[arg(long)]
    scheme: Option<String>,
    /// Context length the KV cache must fit.
    #[arg(long, default_value_t = 4096)]
    ctx: u64,
    /// Memory of the board or GPU (e.g. 8GB); the profile's default otherwise.
    #[arg(long)]
    memory: Option<String>,
    /// Prompt token ids for the golden, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "prompt")]
    ids: Vec<u32>,
    /// Prompt text for the golden, tokenized with the source's own tokenizer.
    #[arg(long)]
    prompt: Option<String>,
    /// Keep a bundle that fails the quality gate (recorded as failed).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    split: crate::split::SplitArgs,
}

pub fn run(args: Args) -> Result<()> {
    let profile = wharf_targets::by_name(&args.target).with_context(|| {
        format!(
            "unknown target `{}`; `wharf targets` lists them",
            args.target
        )
    })?;
    let mut opts = ExportOptions::new(profile);
    opts.scheme = args.scheme;
    opts.ctx = args.ctx;
    opts.zip = args.zip;
    opts.force = args.force;
    opts.config = args.config.clone();
    opts.split = args.split.by()?;
    if let Some(m) = &args.memory {
        let Some(bytes) = parse_memory(m) else {
            bail!("--memory `{m}`: expected a size such as 8GB or 512MiB");
        };
        opts.memory = Some(bytes);
    }
    if !args.ids.is_empty() {
        opts.prompt_ids = Some(args.ids);
    }
    if let Some(text) = &args.prompt {
        let places = crate::infer::tokenizer_places(&args.src, args.config.as_deref());
        let ids = crate::infer::resolve_ids(&Default::default(), Some(text), &places)
            .with_context(|| format!("--prompt needs the tokenizer of {}", args.src.display()))?;
        if ids.is_empty() {
            bail!("--prompt tokenizes to no tokens");
        }
        opts.prompt_ids = Some(ids);
    }
    let mut bar = crate::progress::Bar::new("writing");
    let exported = export_with_progress(&args.src, &args.output, &opts, &mut |s| bar.step(s));
    drop(bar);
    let done = match exported {
        Err(e @ wharf_targets::Error::Gate { .. }) => {
            return Err(CheckFailed(format!("{e}; nothing written (--force keeps it)")).into());
        }
        other => other?,
    };
    let m = &done.manifest.reference.metrics;
    let mut s = format!(
        "wrote {} ({} files, {} weights; preflight needs {} of {} usable)\n",
        done.path.display(),
        done.manifest.files.len(),
        human(done.preflight.weight_bytes),
        human(done.preflight.need_bytes),
        human(done.preflight.usable_bytes),
    );
    for w in &done.source_warnings {
        s.push_str(&format!("warning: source: {w}\n"));
    }
    for w in &done.preflight.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    s.push_str(&format!(
        "reference: top-1 {:.3}, decisive top-1 {:.3} over {} positions, mean KL {:.5} nats, max KL {:.5}, greedy agreement {:.3}{}\n",
        m.top1,
        m.top1_decisive,
        m.decisive_positions,
        m.mean_kl,
        m.max_kl,
        m.greedy_agreement,
        if m.passed {
            ""
        } else {
            " (FAILED, kept by --force)"
        }
    ));
    crate::emit(&s)
}
