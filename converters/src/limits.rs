//! Hard caps applied before any allocation, with where each comes from.

/// Largest safetensors JSON header (the `safetensors` crate's `MAX_HEADER_SIZE`).
pub const SAFETENSORS_MAX_HEADER: u64 = 100_000_000;

/// Largest GGUF string and array (`GGUF_MAX_STRING_LENGTH` / `GGUF_MAX_ARRAY_ELEMENTS`, gguf.cpp).
pub const GGUF_MAX_STRING: u64 = 1 << 30;
/// See [`GGUF_MAX_STRING`].
pub const GGUF_MAX_ARRAY: u64 = 1 << 30;

/// Longest GGUF key (FORMATS.md b1: keys are at most 65535 bytes).
pub const GGUF_MAX_KEY: u64 = 65_535;

/// GGUF tensor names are shorter than `GGML_MAX_NAME` (64, including the NUL).
pub const GGML_MAX_NAME: usize = 64;

/// `GGML_MAX_DIMS`.
pub const GGML_MAX_DIMS: u32 = 4;

/// Tensor and key counts. DeepSeek-V3's safetensors index lists ~91k tensors; a million leaves
/// room and still refuses the 2^64 counts of CVE-2024-25664/25666 before any allocation.
pub const MAX_TENSORS: u64 = 1 << 20;
/// See [`MAX_TENSORS`].
pub const MAX_KVS: u64 = 1 << 20;

/// JSON files wharf reads beside weights (config, index, tokenizer) are never this large.
pub const MAX_JSON_FILE: u64 = 256 << 20;

/// Shards in one sharded folder.
pub const MAX_SHARDS: usize = 100_000;
