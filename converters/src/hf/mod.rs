//! Hugging Face model folders: `config.json`, the tokenizer, and the GGUF mapping.

mod config;
mod fp8_plan;
mod int4_plan;
mod keys;
mod mlx_plan;
mod pre_hashes;
mod renamed;
mod spm;
pub mod storage;
mod to_config;
mod to_gguf;
mod transforms;
mod vocab;
mod write_gguf;

#[cfg(test)]
mod blocks_tests;

pub use config::{architecture, load_config, load_config_file, parse_config};
pub use fp8_plan::{Fp8Plan, Fp8Scheme, plan_fp8, quantization_config};
pub use int4_plan::{Int4Plan, plan_int4};
pub use keys::{count_notation, gguf_arch};
pub use mlx_plan::{MlxPlan, plan_mlx};
pub use renamed::HfRenamed;
pub use spm::{Normalizer, Piece, parse_normalizer, parse_pieces};
pub use to_config::config_json;
pub use to_gguf::{
    GgufOptions, GgufPlan, OutType, block_name as gguf_block_name, plan as plan_gguf,
    plan_logical as plan_gguf_logical,
};
pub use transforms::llama3_rope_factors;
pub use vocab::{probe_hash, tokenizer_kvs};
pub use write_gguf::HfToGguf;
