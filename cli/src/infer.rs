//! `wharf infer MODEL [--ids ...|--prompt TEXT] [--max-new N] [--logits-out FILE.npy] [--json]`:
//! the reference forward pass on any model wharf reads.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;
use wharf_converters::atomic::AtomicFile;
use wharf_reference::{Model, Tokenizer, npy};

/// Where the input tokens come from.
#[derive(clap::Args, Debug, Default)]
pub struct Input {
    /// Token ids, comma separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "prompt")]
    pub ids: Option<Vec<u32>>,
    /// Text, tokenized with the model's own tokenizer (tokenizer.json or GGUF vocabulary).
    #[arg(long)]
    pub prompt: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// An HF folder (config.json + safetensors or PyTorch weights, dense or quantized), a GGUF
    /// file, or an ONNX export with --config.
    model: PathBuf,
    /// The HF `config.json` of an ONNX export: its initializers are read under HF names
    /// (tokenizer files are taken from the config's folder).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    input: Input,
    /// Tokens to generate greedily after the input.
    #[arg(long, default_value_t = 16)]
    max_new: usize,
    /// Write the logits of every input position, `[n, vocab]` f32, to this .npy file.
    #[arg(long)]
    logits_out: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Token ids from `--ids`, or `--prompt` through the tokenizer found beside `model`.
pub fn resolve_ids(input: &Input, text: Option<&str>, models: &[&Path]) -> Result<Vec<u32>> {
    if let Some(ids) = &input.ids {
        return Ok(ids.clone());
    }
    let Some(text) = input.prompt.as_deref().or(text) else {
        bail!("give the input as --ids or --prompt");
    };
    let mut last = None;
    for m in models {
        match Tokenizer::open(m) {
            Ok(t) => return Ok(t.encode(text)?),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::Error::from(
        last.context("no model to take a tokenizer from")?,
    ))
    .context("cannot tokenize the prompt")
}

/// Opens a model, naming the path on failure.
pub fn open(path: &Path) -> Result<Model> {
    open_with_config(path, None)
}

/// [`open`] with the HF config of an ONNX export.
pub fn open_with_config(path: &Path, config: Option<&Path>) -> Result<Model> {
    Model::open_with_config(path, config).with_context(|| format!("opening {}", path.display()))
}

/// Where to look for a tokenizer: the model, then the folder of its `--config`.
pub fn tokenizer_places<'a>(model: &'a Path, config: Option<&'a Path>) -> Vec<&'a Path> {
    let mut places = vec![model];
    places.extend(config.map(|c| c.parent().unwrap_or(Path::new("."))));
    places
}

/// Writes `[rows, cols]` f32 values as .npy, atomically.
pub fn write_npy(path: &Path, rows: usize, cols: usize, data: &[f32]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(&npy::encode_f32(&[rows, cols], data))
        .with_context(|| format!("writing {}", path.display()))?;
    f.commit()?;
    Ok(())
}

/// Whether the files of the model at `path` are larger than this machine's memory: its pages
/// are then dropped after each weight is used, so a model that cannot stay cached anyway
/// (DeepSeek-V3 is 700 GB) keeps about one weight mapped instead of pushing everything else
/// out. A model that fits keeps its pages: dropping them halved generation speed on a 15 GB
/// GGUF here (every step faults them back in).
fn larger_than_memory(path: &Path, config: Option<&Path>) -> bool {
    let bytes: u64 = wharf_converters::AnySource::open_with_config(path, config)
        .map(|s| {
            s.paths()
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let kb = m
            .lines()
            .find(|l| l.starts_with("MemTotal:"))?
            .split_whitespace()
            .nth(1)?;
        kb.parse::<u64>().ok().map(|k| k * 1024)
    });
    total.is_some_and(|t| bytes > t)
}

pub fn run(args: Args) -> Result<()> {
    let config = args.config.as_deref();
    let mut model = open_with_config(&args.model, config)?;
    model.release_pages(larger_than_memory(&args.model, config));
    let places = tokenizer_places(&args.model, config);
    let ids = resolve_ids(&args.input, None, &places)?;
    let t0 = Instant::now();
    let logits = model.logits(&ids)?;
    let prefill_s = t0.elapsed().as_secs_f64();
    if let Some(out) = &args.logits_out {
        write_npy(out, logits.n_pos, logits.vocab, &logits.data)?;
    }
    let t1 = Instant::now();
    let generated = model.generate(&ids, args.max_new)?;
    let gen_s = t1.elapsed().as_secs_f64();
    let text = places
        .iter()
        .find_map(|p| Tokenizer::open(p).ok())
        .and_then(|t| t.decode(&generated).ok());
    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let report = json!({
        "model": args.model.display().to_string(),
        "architecture": model.spec().arch.to_string(),
        "input_ids": ids,
        "next_token": logits.argmax().last(),
        "generated": generated,
        "text": text,
        "prompt_tokens_per_s": rate(ids.len(), prefill_s),
        // Generation re-runs the prompt as its first step, then one token per step.
        "generate_tokens_per_s": rate(generated.len(), gen_s),
        "logits_out": args.logits_out.as_ref().map(|p| p.display().to_string()),
    });
    if args.json {
        return crate::emit(&(serde_json::to_string_pretty(&report)? + "\n"));
    }
    let mut s = format!(
        "model      {} ({})\ninput ids  {:?}\ngenerated  {:?}\n",
        args.model.display(),
        model.spec().arch,
        ids,
        generated
    );
    if let Some(t) = text {
        s += &format!("text       {t:?}\n");
    }
    s += &format!(
        "speed      prompt {:.1} tok/s, generation {:.1} tok/s\n",
        rate(ids.len(), prefill_s),
        rate(generated.len(), gen_s)
    );
    crate::emit(&s)
}
