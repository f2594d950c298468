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

/// Largest `data.pkl` of a PyTorch zip checkpoint. A state dict of 100k tensors pickles to about
/// 10 MB; the pickle is held in memory while it is parsed.
pub const PICKLE_MAX_BYTES: u64 = 256 << 20;

/// Pickle values created (including copies made by BINGET) per byte of pickle, plus a constant.
/// A `torch.save` state dict creates about one value per opcode; memo amplification
/// (RELIABILITY.md P10) needs many more.
pub const PICKLE_NODES_PER_BYTE: u64 = 2;
/// See [`PICKLE_NODES_PER_BYTE`].
pub const PICKLE_NODES_BASE: u64 = 1 << 16;

/// Nesting depth of pickle containers (a state dict needs 4: dict, tuple, tuple, tuple).
pub const PICKLE_MAX_DEPTH: u16 = 64;

/// Pickle stack entries and open MARKs.
pub const PICKLE_MAX_STACK: usize = 1 << 20;

/// Pickle memo entries (a state dict memoizes about 8 values per tensor).
pub const PICKLE_MAX_MEMO: usize = 1 << 24;

/// Entries in a PyTorch zip (one record per storage plus five small files).
pub const TORCH_MAX_ENTRIES: usize = 1 << 20;

/// ONNX: nesting of protobuf messages we descend into, and the largest inline model
/// (protobuf's own 2 GiB limit, RELIABILITY.md O5).
pub const ONNX_MAX_DEPTH: u32 = 16;
/// See [`ONNX_MAX_DEPTH`].
pub const ONNX_MAX_INLINE: u64 = 2 << 30;
