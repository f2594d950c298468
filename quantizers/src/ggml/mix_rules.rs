//! The per-category rules of llama.cpp `src/llama-quant.cpp` (`llama_tensor_get_type_impl`
//! and `tensor_type_fallback`), for the mixes of [`super::Mix`]. Our own code.

use wharf_core::DType;

use super::{Mix, MixOptions, ModelFacts, block_index};

/// llama-quant's broad tensor categories (`tensor_get_category`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

impl Category {
    /// Classifies a tensor by name; the first matching fragment wins, as in llama-quant.
    pub(super) fn of(name: &str) -> Category {
        if name == "output.weight" {
            return Category::Output;
        }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            return Category::TokenEmbd;
        }
        const BY_FRAGMENT: &[(&str, Category)] = &[
            ("attn_qkv.weight", Category::AttnQkv),
            ("attn_kv_b.weight", Category::AttnKvB),
            ("attn_v.weight", Category::AttnV),
            ("attn_k.weight", Category::AttnK),
            ("attn_q.weight", Category::AttnQ),
            ("attn_output.weight", Category::AttnOutput),
            ("ffn_up", Category::FfnUp),
            ("ffn_gate", Category::FfnGate),
            ("ffn_down", Category::FfnDown),
        ];
        BY_FRAGMENT
            .iter()
            .find(|(frag, _)| name.contains(frag))
            .map_or(Category::Other, |&(_, c)| c)
    }

    /// `attn_v`, fused `attn_qkv` and MLA `attn_kv_b`: the tensors the `attn_v` rules cover.
    fn is_attn_v(self) -> bool {
        matches!(
            self,
            Category::AttnV | Category::AttnQkv | Category::AttnKvB
        )
    }
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third one
/// in between.
pub(super) fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The mutable state of one quantization run (`quantize_state_impl`).
#[derive(Debug)]
pub(super) struct State<'a> {
    pub(super) mix: Mix,
    pub(super) opts: &'a MixOptions,
    pub(super) facts: &'a ModelFacts,
    tied_embeddings: bool,
    n_attention_wv: i64,
    i_attention_wv: i64,
    n_ffn_down: i64,
    i_ffn_down: i64,
}

impl<'a> State<'a> {
    pub(super) fn new(
        mix: Mix,
        opts: &'a MixOptions,
        facts: &'a ModelFacts,
        tensors: &[(String, Vec<u64>)],
    ) -> Self {
        let cats = || tensors.iter().map(|(name, _)| Category::of(name));
        State {
            mix,
            opts,
            facts,
            tied_embeddings: !cats().any(|c| c == Category::Output),
            n_attention_wv: cats().filter(|c| c.is_attn_v()).count() as i64,
            i_attention_wv: 0,
            n_ffn_down: i64::from(facts.n_layer),
            i_ffn_down: 0,
        }
    }

    fn falcon(&self) -> bool {
        self.facts.arch == "falcon"
    }

    fn eight_experts(&self) -> bool {
        self.facts.n_expert == 8
    }

    /// The mixture's choice for one quantizable tensor, starting from `ty` (the default).
    pub(super) fn refine(&mut self, ty: DType, name: &str, shape: &[u64], cat: Category) -> DType {
        if self.facts.arch == "glm5-next"
            && ["attn_q_a", "attn_q_b", "nextn.eh_proj"]
                .iter()
                .any(|f| name.contains(f))
            && !matches!(ty, DType::F32 | DType::BF16 | DType::F16)
        {
            return DType::Q8_0;
        }
        if cat == Category::Output || (self.tied_embeddings && cat == Category::TokenEmbd) {
            return self.output_type(ty, shape);
        }
        match cat {
            Category::TokenEmbd => self.opts.token_embedding_type.unwrap_or(ty),
            c if c.is_attn_v() => self.attn_v_type(ty),
            Category::AttnK if self.eight_experts() => DType::Q8_0,
            Category::FfnDown => self.ffn_down_type(ty, name),
            Category::AttnOutput => self.attn_output_type(ty),
            // The fused-QKV rule of llama-quant sits behind the attn_v branch and never fires;
            // the remaining categories only have IQ/TQ/MXFP4 rules.
            _ => ty,
        }
    }

    /// `output.weight` (and tied `token_embd.weight`).
    fn output_type(&self, ty: DType, shape: &[u64]) -> DType {
        if let Some(t) = self.opts.output_tensor_type {
            return t;
        }
        let row_len = shape.last().copied().unwrap_or(1);
        if self.falcon() || !row_len.is_multiple_of(u64::from(ty.layout().elems)) {
            DType::Q8_0
        } else if ty != DType::Q8_0 {
            DType::Q6K
        } else {
            ty
        }
    }

    fn attn_v_type(&mut self, ty: DType) -> DType {
        let (i, n) = (self.i_attention_wv, self.n_attention_wv);
        self.i_attention_wv += 1;
        let mut t = match self.mix {
            Mix::Q2_K if self.facts.n_gqa() >= 4 => DType::Q4K,
            Mix::Q2_K => DType::Q3K,
            Mix::Q3_K_M if i < 2 => DType::Q5K,
            Mix::Q3_K_M => DType::Q4K,
            Mix::Q3_K_L => DType::Q5K,
            Mix::Q4_K_M | Mix::Q5_K_M if use_more_bits(i, n) => DType::Q6K,
            Mix::Q4_K_S if i < 4 => DType::Q5K,
            _ => ty,
        };
        if self.facts.is_70b && matches!(t, DType::Q3K | DType::Q4K) {
            t = DType::Q5K;
        }
        if self.eight_experts() {
            t = DType::Q8_0;
        }
        t
    }

    /// The layer of an `ffn_down` tensor: the running count, or for MoE models the `blk.N.`
    /// of the name (where llama.cpp would abort on a missing or bad index, we keep the count).
    fn ffn_layer(&self, counter: i64, n_layer: i64, name: &str) -> i64 {
        if self.facts.n_expert > 1
            && let Some(i) = block_index(name).filter(|&i| (0..n_layer).contains(&i))
        {
            return i;
        }
        counter
    }

    fn ffn_down_type(&mut self, ty: DType, name: &str) -> DType {
        let n = self.n_ffn_down;
        let i = self.ffn_layer(self.i_ffn_down, n, name);
        self.i_ffn_down += 1;
        let falcon = self.falcon();
        match self.mix {
            Mix::Q2_K => DType::Q3K,
            Mix::Q3_K_M if i < n / 16 => DType::Q5K,
            Mix::Q3_K_M if !falcon || use_more_bits(i, n) => DType::Q4K,
            Mix::Q3_K_M => DType::Q3K,
            Mix::Q3_K_L if falcon => DType::Q4K,
            Mix::Q3_K_L => DType::Q5K,
            Mix::Q4_K_M if falcon && i < n / 16 => DType::Q6K,
            Mix::Q4_K_M if falcon && use_more_bits(i, n) => DType::Q5K,
            Mix::Q4_K_M if falcon => DType::Q4K,
            Mix::Q4_K_M | Mix::Q5_K_M if use_more_bits(i, n) => DType::Q6K,
            Mix::Q4_K_S if !falcon && i < n / 8 => DType::Q5K,
            Mix::Q4_0 if self.opts.imatrix && i < n / 8 => DType::Q4_1,
            Mix::Q5_0 if self.opts.imatrix && i < n / 8 => DType::Q5_1,
            _ => ty,
        }
    }

    fn attn_output_type(&self, ty: DType) -> DType {
        if self.falcon() {
            return if self.mix == Mix::Q3_K_L {
                DType::Q4K
            } else {
                ty
            };
        }
        if self.eight_experts() {
            let bump = matches!(
                self.mix,
                Mix::Q2_K | Mix::Q3_K_S | Mix::Q3_K_M | Mix::Q4_K_S | Mix::Q4_K_M
            );
            return if bump { DType::Q5K } else { ty };
        }
        match self.mix {
            Mix::Q2_K => DType::Q3K,
            Mix::Q3_K_M => DType::Q4K,
            Mix::Q3_K_L => DType::Q5K,
            _ => ty,
        }
    }
}

/// `tensor_type_fallback`: when the row length is not a whole number of `ty`'s blocks, a
/// 32-element type of similar size, and F16 when even that does not fit.
pub(super) fn fallback(ty: DType, row_len: u64) -> DType {
    let block = |t: DType| u64::from(t.layout().elems.max(1));
    if row_len.is_multiple_of(block(ty)) {
        return ty;
    }
    let alt = match ty {
        DType::IQ1S
        | DType::IQ1M
        | DType::IQ2XXS
        | DType::IQ2XS
        | DType::IQ2S
        | DType::IQ3XXS
        | DType::IQ3S
        | DType::IQ4XS => DType::IQ4NL,
        DType::Q2K | DType::Q3K | DType::TQ1_0 | DType::TQ2_0 => DType::Q4_0,
        DType::Q4K => DType::Q5_0,
        DType::Q5K => DType::Q5_1,
        DType::Q6K => DType::Q8_0,
        // llama.cpp keeps 32-element types (and then lands on F16 below) and aborts for
        // other 256-element types; we take F16 for those too.
        other => other,
    };
    if row_len.is_multiple_of(block(alt)) {
        alt
    } else {
        DType::F16
    }
}
