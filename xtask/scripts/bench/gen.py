"""Deterministic synthetic HF llama folders (BF16 safetensors + byte-level BPE tokenizer.json)."""

import json
import struct
from pathlib import Path

import numpy as np

SMOLLM2_135M = dict(layers=30, hidden=576, heads=9, kv_heads=3, ffn=1536, vocab=49152)
# The `--size-gb N` export model: every dimension a multiple of 256, ~90 MB BF16 per layer.
WIDE = dict(hidden=2048, heads=16, kv_heads=4, ffn=5632, vocab=49152)
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"]


def byte_chars():
    """GPT-2's byte -> printable character table (bytes_to_unicode)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def tokenizer_json(vocab_size):
    """Specials, the 256 byte tokens, then filler tokens that are pairs of byte tokens, each with
    its merge (so llama.cpp's BPE vocabulary is well formed); ByteLevel pre-tokenizer as GPT-2's."""
    chars = byte_chars()
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for c in chars:
        vocab[c] = len(vocab)
    merges = []
    for a in chars:
        for b in chars:
            if len(vocab) >= vocab_size:
                break
            vocab[a + b] = len(vocab)
            merges.append([a, b])
    added = [dict(id=i, content=t, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
             for i, t in enumerate(SPECIALS)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def tensors(s, tied=True):
    """(name, shape) in HF order."""
    h, hd = s["hidden"], s["hidden"] // s["heads"]
    out = [("model.embed_tokens.weight", (s["vocab"], h))]
    for i in range(s["layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (h,)),
            (p + "self_attn.q_proj.weight", (s["heads"] * hd, h)),
            (p + "self_attn.k_proj.weight", (s["kv_heads"] * hd, h)),
            (p + "self_attn.v_proj.weight", (s["kv_heads"] * hd, h)),
            (p + "self_attn.o_proj.weight", (h, s["heads"] * hd)),
            (p + "post_attention_layernorm.weight", (h,)),
            (p + "mlp.gate_proj.weight", (s["ffn"], h)),
            (p + "mlp.up_proj.weight", (s["ffn"], h)),
            (p + "mlp.down_proj.weight", (h, s["ffn"])),
        ]
    out.append(("model.norm.weight", (h,)))
    if not tied:
        out.append(("lm_head.weight", (s["vocab"], h)))
    return out


def params(s):
    return sum(int(np.prod(shape)) for _, shape in tensors(s))


def wide_spec(size_gb):
    """WIDE with as many layers as make about `size_gb` GB of BF16 (at least 1)."""
    s = dict(WIDE, layers=1)
    per_layer = params(dict(s, layers=2)) - params(s)
    base = params(s) - per_layer
    s["layers"] = max(1, round((size_gb * 1e9 / 2 - base) / per_layer))
    return s


def _bf16(x):
    """f32 -> bf16 bits, round to nearest even."""
    u = x.view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_folder(d, s, seed=0):
    """One `model.safetensors` (BF16), written tensor by tensor, plus config and tokenizer."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = tensors(s)
    header, off = {}, 0
    for name, shape in names:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(d / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        for name, shape in names:
            if name.endswith("norm.weight"):
                x = np.ones(shape, np.float32)
            else:
                # Rows of std 1/sqrt(fan_in) keep activations O(1) through the layers.
                x = rng.standard_normal(shape, dtype=np.float32) * np.float32(shape[-1] ** -0.5)
                if name == "model.embed_tokens.weight":
                    x *= np.float32(0.5 * shape[-1] ** 0.5)  # embedding rows of std 0.5
            f.write(_bf16(x).tobytes())
    hd = s["hidden"] // s["heads"]
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False,
        "bos_token_id": 0, "eos_token_id": 1, "head_dim": hd, "hidden_act": "silu",
        "hidden_size": s["hidden"], "intermediate_size": s["ffn"], "max_position_embeddings": 2048,
        "mlp_bias": False, "num_attention_heads": s["heads"], "num_hidden_layers": s["layers"],
        "num_key_value_heads": s["kv_heads"], "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "rope_scaling": None, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": s["vocab"],
    }
    (d / "config.json").write_text(json.dumps(config, indent=2))
    (d / "generation_config.json").write_text(json.dumps({"bos_token_id": 0, "eos_token_id": 1}))
    (d / "tokenizer.json").write_text(json.dumps(tokenizer_json(s["vocab"]), ensure_ascii=False))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": SPECIALS[0], "eos_token": SPECIALS[1],
        "pad_token": SPECIALS[2], "add_bos_token": True, "model_max_length": 2048}))
    (d / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": SPECIALS[0], "eos_token": SPECIALS[1], "pad_token": SPECIALS[2]}))
    return params(s)
