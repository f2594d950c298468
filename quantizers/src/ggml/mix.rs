//! Per-tensor type choice of llama.cpp's `llama-quantize` quantization mixes.
//!
//! A re-implementation (our own code) of the rules in llama.cpp `src/llama-quant.cpp`:
//! `tensor_allows_quantization`, `llama_tensor_get_type` with its `_impl` and
//! `tensor_type_fallback`, and the counters that `llama_model_quantize_impl` keeps (the
//! `attn_v`-like and `ffn_down` indices). See also `shared/design/FORMATS.md` section b3.
//!
//! Only the non-IQ mixes are modelled (see [`Mix`]); the rules that only fire for IQ, TQ or
//! MXFP4 file types are left out. Tensors are visited in llama.cpp's order (by layer number,
//! then by name) so that the `attn_v` counter matches, whatever order the caller gives.

use std::fmt;
use std::str::FromStr;

use wharf_core::DType;

#[path = "mix_rules.rs"]
mod rules;

/// A `llama_ftype` quantization mix, as named by `llama-quantize`.
#[allow(non_camel_case_types, missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mix {
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2_K,
    Q3_K_S,
    Q3_K_M,
    Q3_K_L,
    Q4_K_S,
    Q4_K_M,
    Q5_K_S,
    Q5_K_M,
    Q6_K,
    F16,
    BF16,
}

/// `(mix, llama_ftype id, name, default tensor type)`.
const MIXES: &[(Mix, u32, &str, DType)] = &[
    (Mix::F16, 1, "F16", DType::F16),
    (Mix::Q4_0, 2, "Q4_0", DType::Q4_0),
    (Mix::Q4_1, 3, "Q4_1", DType::Q4_1),
    (Mix::Q8_0, 7, "Q8_0", DType::Q8_0),
    (Mix::Q5_0, 8, "Q5_0", DType::Q5_0),
    (Mix::Q5_1, 9, "Q5_1", DType::Q5_1),
    (Mix::Q2_K, 10, "Q2_K", DType::Q2K),
    (Mix::Q3_K_S, 11, "Q3_K_S", DType::Q3K),
    (Mix::Q3_K_M, 12, "Q3_K_M", DType::Q3K),
    (Mix::Q3_K_L, 13, "Q3_K_L", DType::Q3K),
    (Mix::Q4_K_S, 14, "Q4_K_S", DType::Q4K),
    (Mix::Q4_K_M, 15, "Q4_K_M", DType::Q4K),
    (Mix::Q5_K_S, 16, "Q5_K_S", DType::Q5K),
    (Mix::Q5_K_M, 17, "Q5_K_M", DType::Q5K),
    (Mix::Q6_K, 18, "Q6_K", DType::Q6K),
    (Mix::BF16, 32, "BF16", DType::BF16),
];

impl Mix {
    fn row(self) -> (Mix, u32, &'static str, DType) {
        // Every variant has exactly one row in MIXES.
        MIXES
            .iter()
            .copied()
            .find(|r| r.0 == self)
            .unwrap_or((self, 0, "?", DType::F32))
    }

    /// Every mix, by `llama_ftype` id.
    pub fn all() -> impl Iterator<Item = Mix> {
        MIXES.iter().map(|r| r.0)
    }

    /// The `llama_ftype` id written to `general.file_type`.
    pub fn file_type(self) -> u32 {
        self.row().1
    }

    /// The mix whose `llama_ftype` id is `id`, if it is one of ours.
    pub fn from_file_type(id: u32) -> Option<Mix> {
        MIXES.iter().find(|r| r.1 == id).map(|r| r.0)
    }

    /// The name `llama-quantize` takes (`Q4_K_M`, `F16`, ...).
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// The type of tensors that no rule singles out.
    pub fn default_type(self) -> DType {
        self.row().3
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`Mix::from_str`]: the name is not a known mix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownMix(pub String);

impl fmt::Display for UnknownMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown quantization mix {:?}", self.0)
    }
}

impl std::error::Error for UnknownMix {}

impl FromStr for Mix {
    type Err = UnknownMix;

    /// Case-insensitive; `Q3_K`, `Q4_K` and `Q5_K` are the `_M` mixes, as in llama-quantize.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.to_ascii_uppercase();
        let canonical = match up.as_str() {
            "Q3_K" => "Q3_K_M",
            "Q4_K" => "Q4_K_M",
            "Q5_K" => "Q5_K_M",
            other => other,
        };
        MIXES
            .iter()
            .find(|r| r.2 == canonical)
            .map(|r| r.0)
            .ok_or_else(|| UnknownMix(s.to_string()))
    }
}

/// The `llama-quantize` options that change tensor types.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MixOptions {
    /// `--pure`: no per-tensor rules; every quantized tensor takes the default type (the
    /// type options and overrides below still apply, and so do the shape fallbacks).
    pub pure: bool,
    /// `--leave-output-tensor`: `output.weight` stays F32.
    pub leave_output_tensor: bool,
    /// `--output-tensor-type`.
    pub output_tensor_type: Option<DType>,
    /// `--token-embedding-type`.
    pub token_embedding_type: Option<DType>,
    /// `--tensor-type PATTERN=TYPE`, first match wins. llama.cpp takes a regex searched in the
    /// name; we take a plain substring, optionally anchored with a leading `^` and/or trailing
    /// `$`, where `*` matches any run of characters (e.g. `^blk.*.ffn_down`, `attn_v$`).
    /// Overrides only act when the mix's default type is a block type (not F16/BF16).
    pub tensor_type_overrides: Vec<(String, DType)>,
    /// Whether an importance matrix is given (only the Q4_0/Q5_0 `ffn_down` rule reads it).
    pub imatrix: bool,
}

/// The model facts llama-quant reads (from the GGUF metadata).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelFacts {
    /// `general.architecture` (`llama`, `falcon`, ...).
    pub arch: String,
    /// `<arch>.block_count`: the layer count the `ffn_down` rules use.
    pub n_layer: u32,
    /// `<arch>.attention.head_count`.
    pub n_head: u32,
    /// `<arch>.attention.head_count_kv` (GQA); 0 if unknown.
    pub n_head_kv: u32,
    /// `<arch>.expert_count`; 0 for dense models.
    pub n_expert: u32,
    /// Whether llama.cpp classes the model as 70B (it bumps `attn_v` then).
    pub is_70b: bool,
}

impl ModelFacts {
    /// Query heads per KV head, 0 when there are no KV heads (llama.cpp `n_gqa`).
    pub fn n_gqa(&self) -> u32 {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }
}

/// Decides the type of every tensor.
///
/// `tensors` are `(name, shape)` with the shape outer first (`[.., rows, row_len]`), in any
/// order (GGUF file order, say). Returns one type per tensor, in the same order; tensors that
/// llama-quantize copies unchanged get F32 (the input is assumed to be F32). Whether the
/// embeddings are tied is read from the names: with no `output.weight`, `token_embd.weight`
/// is treated like the output tensor.
pub fn choose_types(
    mix: Mix,
    opts: &MixOptions,
    facts: &ModelFacts,
    tensors: &[(String, Vec<u64>)],
) -> Vec<DType> {
    let mut state = rules::State::new(mix, opts, facts, tensors);
    let mut out = vec![DType::F32; tensors.len()];
    for i in visit_order(tensors) {
        let (name, shape) = &tensors[i];
        out[i] = tensor_type(&mut state, name, shape);
    }
    out
}

/// llama.cpp's loader order: by `blk.N.` layer (-1 for none), then by name.
fn visit_order(tensors: &[(String, Vec<u64>)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let (na, nb) = (&tensors[a].0, &tensors[b].0);
        let la = block_index(na).unwrap_or(-1);
        let lb = block_index(nb).unwrap_or(-1);
        la.cmp(&lb).then_with(|| na.as_bytes().cmp(nb.as_bytes()))
    });
    order
}

/// The `N` of a `blk.N.` prefix (as `sscanf("blk.%d.")` reads it).
pub(crate) fn block_index(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}

/// `llama_tensor_get_type` for one tensor.
fn tensor_type(state: &mut rules::State<'_>, name: &str, shape: &[u64]) -> DType {
    let opts = state.opts;
    if !allows_quantization(opts, &state.facts.arch, name, shape) {
        return DType::F32;
    }
    let cat = rules::Category::of(name);
    if let Some(t) = opts.token_embedding_type
        && cat == rules::Category::TokenEmbd
        && !(name == "per_layer_token_embd.weight" && override_for(opts, name).is_some())
    {
        return t;
    }
    if let Some(t) = opts.output_tensor_type
        && cat == rules::Category::Output
    {
        return t;
    }
    let default = state.mix.default_type();
    if !default.is_ggml_block() {
        return default;
    }
    let ty = match override_for(opts, name) {
        Some(t) => t,
        None if opts.pure => default,
        None => state.refine(default, name, shape, cat),
    };
    rules::fallback(ty, row_len(shape))
}

fn row_len(shape: &[u64]) -> u64 {
    shape.last().copied().unwrap_or(1)
}

/// `ggml_n_dims`: dimensions up to the last one (innermost first) that is not 1.
fn n_dims(shape: &[u64]) -> usize {
    shape
        .iter()
        .position(|&d| d != 1)
        .map_or(1, |outer| shape.len() - outer)
}

/// Name fragments llama-quant never quantizes (for any architecture).
const KEEP: &[&str] = &[
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
];

/// Further fragments kept for `glm5-next`.
const KEEP_GLM5_NEXT: &[&str] = &[
    "hc_",
    "indexer.attn_q_b",
    "indexer.attn_k",
    "indexer.proj",
    "indexer_compressor_gate",
    "indexer_compressor_ape",
    "ssm_f_a.weight",
    "ssm_f_b.weight",
    "ssm_g_a.weight",
    "ssm_g_b.weight",
    "ssm_beta.weight",
    "attn_kv_a_mqa.weight",
    "attn_k_b.weight",
    "attn_v_b.weight",
];

/// `tensor_requires_imatrix`: the very-low-bit types llama-quantize refuses to write without
/// an importance matrix (the embeddings and the output tensor excepted). Q2_K needs one only in
/// the Q2_K_S mix, which is not among [`Mix`].
pub fn requires_imatrix(name: &str, dtype: DType) -> bool {
    let exempt = matches!(
        name,
        "token_embd.weight" | "per_layer_token_embd.weight" | "output.weight"
    );
    !exempt
        && matches!(
            dtype,
            DType::IQ3XXS | DType::IQ2XXS | DType::IQ2XS | DType::IQ2S | DType::IQ1M | DType::IQ1S
        )
}

/// `tensor_allows_quantization`: 2-D and 3-D `*weight` tensors, less the exceptions. A tensor
/// it refuses is copied in its source type.
pub fn allows_quantization(opts: &MixOptions, arch: &str, name: &str, shape: &[u64]) -> bool {
    if n_dims(shape) < 2 || !name.ends_with("weight") {
        return false;
    }
    if opts.leave_output_tensor && name == "output.weight" {
        return false;
    }
    if name == "position_embd.weight" || name == "token_types.weight" {
        return false;
    }
    let glm = if arch == "glm5-next" {
        KEEP_GLM5_NEXT
    } else {
        &[]
    };
    !KEEP.iter().chain(glm).any(|frag| name.contains(frag))
}

/// The first `--tensor-type` override whose pattern matches `name`.
fn override_for(opts: &MixOptions, name: &str) -> Option<DType> {
    opts.tensor_type_overrides
        .iter()
        .find(|(pattern, _)| pattern_matches(pattern, name))
        .map(|&(_, t)| t)
}

/// Our small pattern language: see [`MixOptions::tensor_type_overrides`].
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let (start, p) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let (end, p) = match p.strip_suffix('$') {
        Some(p) => (true, p),
        None => (false, p),
    };
    let parts: Vec<&str> = p.split('*').collect();
    let mut pos = 0;
    for (k, part) in parts.iter().enumerate() {
        let last = k + 1 == parts.len();
        let found = if k == 0 && start {
            name.starts_with(part).then_some(0)
        } else if last && end {
            let at = name.len().checked_sub(part.len()).filter(|&at| at >= pos);
            at.filter(|&at| name.as_bytes()[at..] == *part.as_bytes())
        } else {
            name[pos..].find(part).map(|i| i + pos)
        };
        match found {
            Some(at) => pos = at + part.len(),
            None => return false,
        }
    }
    !end || pos == name.len() || parts.last().is_some_and(|p| p.is_empty())
}
