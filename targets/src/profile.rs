//! Target profiles as data: what each target produces, which schemes fit it, the memory of
//! the boards or GPUs it names, and the quality thresholds its bundles must meet.
//!
//! Nothing here looks at the host: exporting for a Raspberry Pi on x86 gives the same bytes as
//! on the Pi (PRODUCT.md, "Targets").

use serde::Serialize;

/// The container a target's runtime loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Container {
    /// One GGUF file for llama.cpp.
    Gguf,
    /// An HF folder with DeepSeek-style FP8 block weights for vLLM / SGLang.
    HfFp8,
    /// An MLX folder for mlx-lm.
    Mlx,
}

/// One target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetProfile {
    /// The name given to `--target`.
    pub name: &'static str,
    /// One line for `wharf targets`.
    pub summary: &'static str,
    /// What the bundle holds.
    pub container: Container,
    /// The scheme used without `--scheme`.
    pub default_scheme: &'static str,
    /// Schemes `--scheme` may pick for this target.
    pub schemes: &'static [&'static str],
    /// Runtimes the bundle is made for.
    pub runtimes: &'static [&'static str],
    /// Memory sizes of the boards or GPUs this target names, GiB.
    pub memory_gib: &'static [u64],
    /// The size preflight assumes without `--memory`, GiB.
    pub default_memory_gib: u64,
    /// Memory the OS or runtime keeps for itself, in percent of the board's memory.
    pub reserved_percent: u64,
    /// Tensor-parallel sizes preflight reports on (GPU targets).
    pub tp_sizes: &'static [u64],
    /// Runtime weight repacking whose row rules preflight checks (`pi5`).
    pub repack: bool,
    /// Largest safetensors shard, bytes (folder targets).
    pub max_shard_bytes: u64,
    /// Quality gate at export and verify.
    pub thresholds: Gate,
}

/// The reference-check limits of a target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gate {
    /// Smallest top-1 agreement with the source over the prompt positions.
    pub min_top1: f64,
    /// Largest mean top-k KL(source || bundle) per position, nats.
    pub max_mean_kl: f64,
}

const GB: u64 = 1 << 30;

/// Every target, in the order `wharf targets` lists them.
pub const TARGETS: &[TargetProfile] = &[
    TargetProfile {
        name: "h800",
        summary: "HF folder, FP8 E4M3 weights with 128x128 block scales (DeepSeek layout), for vLLM and SGLang",
        container: Container::HfFp8,
        default_scheme: "fp8-block",
        schemes: &["fp8-block"],
        runtimes: &["vllm", "sglang"],
        memory_gib: &[80],
        default_memory_gib: 80,
        // vLLM's default gpu_memory_utilization is 0.9.
        reserved_percent: 10,
        tp_sizes: &[1, 2, 4, 8, 16],
        repack: false,
        max_shard_bytes: 5 * GB,
        thresholds: Gate {
            min_top1: 0.75,
            max_mean_kl: 0.01,
        },
    },
    TargetProfile {
        name: "apple-silicon",
        summary: "MLX folder, affine 4-bit group 64, for mlx-lm (or a GGUF for llama.cpp / Ollama)",
        container: Container::Mlx,
        default_scheme: "mlx4",
        schemes: &["mlx4", "mlx8", "gguf:Q4_K_M", "gguf:Q8_0"],
        runtimes: &["mlx-lm", "llama.cpp"],
        memory_gib: &[8, 16, 24, 32, 64, 128],
        default_memory_gib: 16,
        // macOS lets Metal use about 75% of unified memory by default.
        reserved_percent: 25,
        tp_sizes: &[],
        repack: false,
        max_shard_bytes: 5 * GB,
        thresholds: Gate {
            min_top1: 0.5,
            max_mean_kl: 0.1,
        },
    },
    TargetProfile {
        name: "pi5",
        summary: "single-file GGUF Q4_K_M (Q4_0 on request) for llama.cpp on Cortex-A76",
        container: Container::Gguf,
        default_scheme: "gguf:Q4_K_M",
        schemes: &["gguf:Q4_K_M", "gguf:Q4_0", "gguf:Q8_0"],
        runtimes: &["llama.cpp"],
        memory_gib: &[4, 8, 16],
        default_memory_gib: 8,
        reserved_percent: 15,
        tp_sizes: &[],
        repack: true,
        max_shard_bytes: u64::MAX,
        thresholds: Gate {
            min_top1: 0.5,
            max_mean_kl: 0.1,
        },
    },
    TargetProfile {
        name: "pi4",
        summary: "single-file GGUF Q4_0 for llama.cpp on Cortex-A72 (no dotprod, no repack)",
        container: Container::Gguf,
        default_scheme: "gguf:Q4_0",
        schemes: &["gguf:Q4_0", "gguf:Q8_0"],
        runtimes: &["llama.cpp"],
        memory_gib: &[2, 4, 8],
        default_memory_gib: 4,
        reserved_percent: 15,
        tp_sizes: &[],
        repack: false,
        max_shard_bytes: u64::MAX,
        thresholds: Gate {
            min_top1: 0.5,
            max_mean_kl: 0.1,
        },
    },
];

/// The profile named `name`.
pub fn by_name(name: &str) -> Option<&'static TargetProfile> {
    TARGETS.iter().find(|t| t.name == name)
}

impl TargetProfile {
    /// The scheme to use: `requested` when it fits this target, else the default.
    pub fn scheme(&self, requested: Option<&str>) -> Result<&str, crate::Error> {
        match requested {
            None => Ok(self.default_scheme),
            Some(s) => self
                .schemes
                .iter()
                .find(|x| x.eq_ignore_ascii_case(s))
                .copied()
                .ok_or_else(|| crate::Error::Scheme {
                    target: self.name,
                    scheme: s.to_owned(),
                    allowed: self.schemes.join(", "),
                }),
        }
    }

    /// This profile as JSON (what `wharf targets --json` prints and manifests record).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}
