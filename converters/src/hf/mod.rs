//! Hugging Face model folders: `config.json`, the tokenizer, and the GGUF mapping.

mod config;
mod keys;
mod spm;
pub mod storage;
mod to_gguf;
mod transforms;
mod vocab;

pub use config::{architecture, load_config, parse_config};
pub use keys::{count_notation, gguf_arch};
pub use spm::{Piece, parse_pieces};
pub use to_gguf::{GgufOptions, GgufPlan, OutType, plan as plan_gguf};
pub use vocab::tokenizer_kvs;
