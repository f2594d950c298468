//! HF-folder output: FP8 (DeepSeek block or compressed-tensors) and MLX affine folders, as
//! vLLM/SGLang and mlx-lm load them. Shards + index, config with the scheme's quantization
//! block, tokenizer files copied; quantized sources are dequantized first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wharf_converters::AnySource;
use wharf_converters::hf::storage::QuantizedView;
use wharf_converters::hf::{Fp8Plan, Fp8Scheme, Int4Plan, MlxPlan, plan_fp8, plan_int4, plan_mlx};
use wharf_converters::pipeline::{self, Encoder, Planned};
use wharf_converters::safetensors::{ShardedWriter, TapFactory, plan_shards};
use wharf_core::{TensorMeta, TensorSink};
use wharf_quantizers::mlx::MlxParams;

use crate::{Error, Progress, Result};

/// Largest shard, as transformers' `save_pretrained` default.
pub const SHARD_BYTES: u64 = 5_000_000_000;

/// Files an HF folder carries beside its weights, copied from the source.
pub const SIDE_FILES: [&str; 5] = [
    "generation_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// A folder scheme.
#[derive(Debug, Clone, Copy)]
pub enum FolderScheme {
    /// One of the FP8 layouts.
    Fp8(Fp8Scheme),
    /// MLX affine.
    Mlx(MlxParams),
    /// compressed-tensors `pack-quantized` W4A16 (4-bit, group 128), symmetric (`int4`) or with a
    /// zero point per group (`int4-asym`).
    Int4 {
        /// `false` for `int4-asym`.
        symmetric: bool,
    },
}

/// Parses `fp8-block`, `ct-fp8-block`, `fp8-channel`, `fp8`, `int4`, `int4-asym`, `mlx4`, `mlx8`,
/// `mlx<B>g<G>`;
/// `None` for names that are none of these.
pub fn parse_scheme(name: &str) -> Option<Result<FolderScheme>> {
    let fp8 = match name {
        "fp8-block" => Some(Fp8Scheme::DeepseekBlock),
        "ct-fp8-block" => Some(Fp8Scheme::CtBlock),
        "fp8-channel" => Some(Fp8Scheme::CtChannel),
        "fp8" => Some(Fp8Scheme::CtTensor),
        _ => None,
    };
    if let Some(s) = fp8 {
        return Some(Ok(FolderScheme::Fp8(s)));
    }
    match name {
        "int4" => return Some(Ok(FolderScheme::Int4 { symmetric: true })),
        "int4-asym" => return Some(Ok(FolderScheme::Int4 { symmetric: false })),
        _ => {}
    }
    let rest = name.strip_prefix("mlx")?;
    let (bits, group) = match rest.split_once('g') {
        Some((b, g)) => (b.parse().ok()?, g.parse().ok()?),
        None => (rest.parse().ok()?, 64),
    };
    Some(
        MlxParams::new(group, bits)
            .map(FolderScheme::Mlx)
            .map_err(|e| Error::Unsupported(format!("scheme `{name}`: {e}"))),
    )
}

enum Kind {
    Fp8(Fp8Plan),
    Mlx(MlxPlan),
    Int4(Int4Plan),
}

/// A planned folder.
pub struct FolderJob<'a> {
    view: QuantizedView<'a>,
    kind: Kind,
    source_dir: PathBuf,
    /// Largest shard ([`SHARD_BYTES`]).
    shard_bytes: u64,
}

impl std::fmt::Debug for FolderJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderJob")
            .field("source_dir", &self.source_dir)
            .finish_non_exhaustive()
    }
}

/// Plans `src` (an HF folder) written with `scheme`.
pub fn plan(src: &AnySource, scheme: FolderScheme) -> Result<FolderJob<'_>> {
    let Some(input) = src.hf() else {
        return Err(Error::Unsupported(
            "FP8, INT4 and MLX output need an HF model: a folder with config.json, or an ONNX \
             export with its config"
                .into(),
        ));
    };
    let (config, dir) = (input.config, input.dir.to_path_buf());
    let view = QuantizedView::new(src, Some(config))?;
    let kind = match scheme {
        FolderScheme::Fp8(s) => Kind::Fp8(plan_fp8(&view, config, s)?),
        FolderScheme::Mlx(p) => Kind::Mlx(plan_mlx(&view, config, p)?),
        FolderScheme::Int4 { symmetric } => Kind::Int4(plan_int4(&view, config, symmetric)?),
    };
    Ok(FolderJob {
        view,
        kind,
        source_dir: dir,
        shard_bytes: SHARD_BYTES,
    })
}

impl FolderJob<'_> {
    /// Shards of at most `bytes` (tests make several shards of a small model).
    pub fn with_shard_bytes(mut self, bytes: u64) -> Self {
        self.shard_bytes = bytes;
        self
    }

    fn tensors(&self) -> &[Planned] {
        match &self.kind {
            Kind::Fp8(p) => &p.tensors,
            Kind::Mlx(p) => &p.tensors,
            Kind::Int4(p) => &p.tensors,
        }
    }

    /// The output tensors.
    pub fn metas(&self) -> Vec<TensorMeta> {
        self.tensors().iter().map(|p| p.meta.clone()).collect()
    }

    /// Writes the folder's files into `out` (an existing, empty folder): shards through
    /// writers fed by `taps`, small files through `small(name, bytes)`, each finished tensor
    /// reported to `progress`.
    pub fn write(
        &self,
        out: &Path,
        taps: Option<TapFactory>,
        small: &mut dyn FnMut(&str, &[u8]) -> Result<()>,
        progress: Progress<'_>,
    ) -> Result<()> {
        let metas = self.metas();
        let shards = plan_shards(&metas, self.shard_bytes)?;
        let (format, config, index) = match &self.kind {
            Kind::Fp8(p) => ("pt", &p.config, None),
            Kind::Mlx(p) => ("mlx", &p.config, Some(p.index_json(&shards.shards)?)),
            Kind::Int4(p) => ("pt", &p.config, None),
        };
        let meta = BTreeMap::from([("format".to_owned(), format.to_owned())]);
        let mut w = ShardedWriter::new(out, shards, meta);
        if index.is_some() {
            w = w.without_index(); // written below, in the scheme's own format
        }
        if let Some(t) = taps {
            w = w.with_taps(t);
        }
        let mut w = Box::new(w);
        let encoder: &dyn Encoder = match &self.kind {
            Kind::Fp8(p) => p,
            Kind::Mlx(p) => p,
            Kind::Int4(p) => p,
        };
        pipeline::run_with(
            &self.view,
            self.tensors(),
            w.as_mut(),
            &mut crate::steps(&metas, progress),
            Some(encoder),
        )?;
        w.finish().map_err(|e| Error::Unsupported(e.to_string()))?;
        if let Some(index) = index {
            small("model.safetensors.index.json", index.as_bytes())?;
        }
        let mut text = serde_json::to_string_pretty(config).unwrap_or_default();
        text.push('\n');
        small("config.json", text.as_bytes())?;
        for name in SIDE_FILES {
            let p = self.source_dir.join(name);
            if p.is_file() {
                let bytes = std::fs::read(&p)
                    .map_err(|e| Error::Convert(wharf_converters::Error::from(e).in_file(&p)))?;
                small(name, &bytes)?;
            }
        }
        Ok(())
    }
}

/// Writes a small file durably (temp beside it, fsync, rename).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = wharf_converters::atomic::AtomicFile::create(path)?;
    f.write_all(bytes)
        .map_err(|e| Error::Convert(wharf_converters::Error::from(e).in_file(path)))?;
    f.commit()?;
    Ok(())
}
