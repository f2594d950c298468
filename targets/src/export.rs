//! `wharf export`: source → plan → preflight → quantized files (hashed as they stream) →
//! golden from the full-precision source → metrics of the bundle's own bytes → quality gate →
//! reference.json, RUN.md, manifest.json → atomic commit (folder or zip).

use std::path::{Path, PathBuf};

use serde_json::json;
use wharf_converters::AnySource;
use wharf_core::model::ModelSpec;
use wharf_manifests::{FileEntry, Manifest, Recipe, Reference, SCHEMA, Source, Tool};
use wharf_quantizers::ggml::mix::{Mix, MixOptions};
use wharf_reference::Model;

use crate::bundle::BundleDir;
use crate::golden::Golden;
use crate::preflight::{self, Preflight, Request};
use crate::profile::{Container, TargetProfile};
use crate::runmd::{self, RunInfo};
use crate::{Error, Progress, Result, folder, gguf};

/// The prompt used without `--prompt`: the fixtures' golden prompt, folded into the vocabulary.
pub const DEFAULT_PROMPT_IDS: [u32; 16] = [
    0, 17, 345, 902, 5, 1000, 77, 256, 511, 3, 640, 129, 888, 42, 700, 13,
];

/// What `wharf export` was asked for.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The target profile.
    pub profile: &'static TargetProfile,
    /// `--scheme`, when given.
    pub scheme: Option<String>,
    /// Context length preflight reserves a KV cache for.
    pub ctx: u64,
    /// `--memory` in bytes, when given.
    pub memory: Option<u64>,
    /// Prompt token ids; [`DEFAULT_PROMPT_IDS`] folded into the vocabulary when `None`.
    pub prompt_ids: Option<Vec<u32>>,
    /// Greedy tokens recorded after the prompt.
    pub max_new: usize,
    /// Entries per position in the golden.
    pub top_k: usize,
    /// Write a zip instead of a folder.
    pub zip: bool,
    /// Keep a bundle that fails the quality gate (recorded as failed).
    pub force: bool,
    /// A gate other than the profile's (stricter release policies, tests).
    pub gate: Option<crate::Gate>,
    /// The HF `config.json` of an ONNX export source (`--config`).
    pub config: Option<PathBuf>,
    /// A GGUF model written as llama.cpp's split set (`--split-max-size`/`--split-max-tensors`).
    pub split: Option<wharf_converters::gguf::split::SplitBy>,
}

impl ExportOptions {
    /// Defaults for `profile`.
    pub fn new(profile: &'static TargetProfile) -> Self {
        ExportOptions {
            profile,
            scheme: None,
            ctx: 4096,
            memory: None,
            prompt_ids: None,
            max_new: 8,
            top_k: 20,
            zip: false,
            force: false,
            gate: None,
            config: None,
            split: None,
        }
    }
}

/// What an export produced.
#[derive(Debug)]
pub struct Exported {
    /// The bundle folder or zip.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Preflight's findings.
    pub preflight: Preflight,
    /// What the source's reader noticed (for example an ONNX export's buffers left out).
    pub source_warnings: Vec<String>,
}

/// Exports `src` to `out` for `opts.profile`.
pub fn export(src_path: &Path, out: &Path, opts: &ExportOptions) -> Result<Exported> {
    export_with_progress(src_path, out, opts, &mut |_| {})
}

/// [`export`], reporting the model files' tensors to `progress` as they are written.
pub fn export_with_progress(
    src_path: &Path,
    out: &Path,
    opts: &ExportOptions,
    progress: Progress<'_>,
) -> Result<Exported> {
    let profile = opts.profile;
    let scheme = profile.scheme(opts.scheme.as_deref())?.to_owned();
    let config = opts.config.as_deref();
    let mut source_model =
        Model::open_with_config(src_path, config).map_err(|e| Error::Reference(e.to_string()))?;
    source_model.release_pages(true);
    let spec = source_model.spec().clone();
    let src = AnySource::open_with_config(src_path, config)?;
    wharf_converters::atomic::ensure_not_input(out, &src.paths())?;
    let job = match container_of(profile, &scheme) {
        Container::Gguf => Job::Gguf(
            gguf::plan(&src, gguf_mix(&scheme)?, &MixOptions::default())?.split_by(opts.split),
        ),
        _ if opts.split.is_some() => {
            return Err(Error::Unsupported(format!(
                "scheme `{scheme}` writes an HF folder (sharded already); a split size applies to GGUF output"
            )));
        }
        _ => {
            let folder_scheme = folder::parse_scheme(&scheme).ok_or_else(|| {
                Error::Unsupported(format!("scheme `{scheme}` is not a folder scheme"))
            })??;
            Job::Folder(folder::plan(&src, folder_scheme)?)
        }
    };
    let metas = match &job {
        Job::Gguf(j) => j.metas(),
        Job::Folder(j) => j.metas(),
    };
    let preflight = preflight::check(&Request {
        profile,
        spec: &spec,
        tensors: &metas,
        ctx: opts.ctx,
        memory: opts.memory,
    });
    if !preflight.errors.is_empty() {
        return Err(Error::Preflight(preflight.errors.clone()));
    }
    let name = model_name(src_path);
    let bundle_target = if opts.zip {
        out.with_extension("zip.parts")
    } else {
        out.to_path_buf()
    };
    let mut bundle = BundleDir::create(&bundle_target)?;
    let model_file = write_model(&src, &job, &mut bundle, &name, &scheme, progress)?;
    drop(job);

    let vocab = source_model.vocab_size() as u32;
    let prompt = opts.prompt_ids.clone().unwrap_or_else(|| {
        DEFAULT_PROMPT_IDS
            .iter()
            .map(|i| i % vocab.max(1))
            .collect()
    });
    let golden = Golden::record(&source_model, &prompt, opts.top_k, opts.max_new)?;
    drop(source_model);
    let thresholds = opts.gate.unwrap_or(profile.thresholds).thresholds();
    let mut bundle_model = Model::open(&bundle.path().join(&model_file))
        .map_err(|e| Error::Reference(e.to_string()))?;
    bundle_model.release_pages(true);
    let metrics = golden.measure(&bundle_model, &thresholds)?;
    drop(bundle_model);
    if !metrics.passed && !opts.force {
        return Err(Error::Gate {
            top1: metrics.top1_decisive,
            mean_kl: metrics.mean_kl,
            max_kl: metrics.max_kl,
            min_top1: thresholds.min_top1,
            max_mean_kl: thresholds.max_mean_kl,
            limit_max_kl: thresholds.max_kl,
        });
    }
    bundle.write("reference.json", &golden.to_bytes())?;
    let bundle_name = out
        .file_stem()
        .map_or_else(|| name.clone(), |s| s.to_string_lossy().into_owned());
    let tp = preflight.tp.iter().find(|r| r.ok).map(|r| r.tp);
    let run = runmd::render(
        profile,
        &RunInfo {
            bundle: &bundle_name,
            model: &model_file,
            prompt_ids: &prompt,
            greedy: &metrics.greedy,
            tp,
        },
    );
    bundle.write("RUN.md", run.as_bytes())?;
    let manifest = Manifest {
        schema: SCHEMA.into(),
        tool: Tool {
            name: "wharf".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        created: wharf_manifests::manifest::source_date_epoch(),
        target: profile.to_json(),
        source: Source {
            name,
            format: src.format().name().into(),
            files: source_files(src_path, &src.paths())?,
        },
        architecture: architecture_json(&spec),
        recipe: Recipe {
            scheme,
            options: Default::default(),
            tensors: metas
                .iter()
                .map(|m| (m.name.clone(), m.dtype.to_string()))
                .collect(),
        },
        files: bundle.entries(),
        reference: Reference {
            model: model_file,
            golden: "reference.json".into(),
            prompt_ids: prompt,
            thresholds,
            metrics,
        },
    };
    let path = if opts.zip {
        bundle.commit_zip(&manifest, out)?
    } else {
        bundle.commit(&manifest)?
    };
    Ok(Exported {
        path,
        manifest,
        preflight,
        source_warnings: src.warnings(),
    })
}

/// What gets written.
enum Job<'a> {
    Gguf(gguf::GgufJob<'a>),
    Folder(folder::FolderJob<'a>),
}

/// Writes the model files into the bundle; returns what the reference check loads (the GGUF
/// file, or `.` for a folder).
fn write_model(
    src: &AnySource,
    job: &Job<'_>,
    bundle: &mut BundleDir,
    name: &str,
    scheme: &str,
    progress: Progress<'_>,
) -> Result<String> {
    match job {
        Job::Gguf(j) => {
            let file = format!("{name}-{}.gguf", scheme.trim_start_matches("gguf:"));
            let taps = bundle.tap_factory();
            let files = gguf::write(src, j, &bundle.path().join(&file), Some(taps), progress)?;
            // The reference check opens a split set by its first file.
            let first = files.first().and_then(|f| f.file_name());
            Ok(first.map_or(file, |f| f.to_string_lossy().into_owned()))
        }
        Job::Folder(j) => {
            let dir = bundle.path().to_path_buf();
            let taps = bundle.tap_factory();
            j.write(&dir, Some(taps), &mut |n, b| bundle.write(n, b), progress)?;
            Ok(".".into())
        }
    }
}

fn container_of(profile: &TargetProfile, scheme: &str) -> Container {
    if scheme.starts_with("gguf:") {
        Container::Gguf
    } else {
        profile.container
    }
}

fn gguf_mix(scheme: &str) -> Result<Mix> {
    let ty = scheme.trim_start_matches("gguf:");
    ty.parse()
        .map_err(|e| Error::Unsupported(format!("scheme `{scheme}`: {e}")))
}

fn model_name(src: &Path) -> String {
    let stem = if src.is_dir() {
        src.file_name()
    } else {
        src.file_stem()
    };
    stem.map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
}

/// Every regular file of the source folder, or every file a single-file source was read from
/// (an ONNX model's external data and config included), hashed.
fn source_files(src: &Path, read: &[PathBuf]) -> Result<Vec<FileEntry>> {
    let files: Vec<(String, PathBuf)> = if src.is_dir() {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(src).map_err(|e| io(src, e))? {
            let entry = entry.map_err(|e| io(src, e))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().map_err(|e| io(src, e))?.is_file() && !file_name.starts_with('.') {
                names.push((file_name, entry.path()));
            }
        }
        names
    } else {
        let parent = src.parent().unwrap_or(Path::new("."));
        read.iter()
            .map(|p| {
                let shown = p.strip_prefix(parent).unwrap_or(p);
                (shown.to_string_lossy().into_owned(), p.clone())
            })
            .collect()
    };
    let mut out = Vec::new();
    for (n, p) in files {
        let d = wharf_manifests::hash_file(&p)?;
        out.push(FileEntry {
            path: n,
            sha256: d.sha256,
            bytes: d.bytes,
        });
    }
    out.sort();
    Ok(out)
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Convert(wharf_converters::Error::from(e).in_file(path))
}

fn architecture_json(spec: &ModelSpec) -> serde_json::Value {
    json!({
        "name": spec.arch.model_type(),
        "hf_class": spec.arch.hf_class(),
        "layers": spec.num_layers,
        "hidden_size": spec.hidden_size,
        "heads": spec.num_heads,
        "kv_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim,
        "vocab_size": spec.vocab_size,
        "mla": spec.mla.is_some(),
        "moe_experts": spec.moe.as_ref().map_or(0, |m| m.n_routed_experts),
    })
}
