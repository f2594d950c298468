"""Real-shape DeepSeek-V3 checkpoints for `cargo xtask bench --deepseek`: the published tensor
shapes, names, config keys and native FP8 layout (E4M3 codes + f32 `weight_scale_inv` per 128x128
block, partial edge blocks included), with random weights from a fixed seed, fewer layers, and
shards of about 4.3 GB with a `model.safetensors.index.json` as the Hub folder has.

Layout facts (DeepSeek-V3 `README_WEIGHTS.md`, its HF `config.json` and index): every Linear of
attention, dense MLP, routed and shared experts is FP8 with scales `[ceil(out/128),
ceil(in/128)]`; embeddings, `lm_head`, norms and the router stay BF16, the router's
`e_score_correction_bias` F32; the MTP module is layer `num_hidden_layers` with `embed_tokens`,
`enorm`, `hnorm`, `eh_proj` (a plain BF16 Linear), a full MoE block and `shared_head.{norm,head}`.
"""

import json
import os
import struct
from pathlib import Path

import numpy as np

from bench import gen

# DeepSeek-V3/R1 (hidden 7168, 128 heads, 256 experts of 2048, vocab 129280).
V3 = dict(hidden=7168, ffn=18432, moe_ffn=2048, experts=256, top_k=8, heads=128, q_lora=1536,
          kv_lora=512, nope=128, rope=64, v=128, vocab=129280, n_group=8, topk_group=4)
# Kimi-K2's shape on the same architecture: 384 experts, 64 heads, 163840 tokens, one group.
KIMI_K2 = dict(V3, experts=384, heads=64, vocab=163840, n_group=1, topk_group=1)
# The dense model of the same size as V3's dense + MoE layers: two dense layers whose FFN holds as
# many weights as a dense FFN plus 257 experts of 2048 (one MoE layer's routed and shared).
DENSE_SAME_SIZE = dict(V3, ffn=(18432 + 257 * 2048) // 2 // 128 * 128)
SHARD = 4_300_000_000
# Bumped when what `write` produces changes (the bench regenerates a checkpoint on a new version).
VERSION = 1


def tensors(s, dense=1, moe=1, mtp=1):
    """(name, shape, kind) in checkpoint order; kind is fp8, bf16, norm, or f32."""
    h = s["hidden"]
    out = [("model.embed_tokens.weight", (s["vocab"], h), "bf16")]
    for i in range(dense + moe + mtp):
        p = f"model.layers.{i}."
        if i == dense + moe:  # the head before the MTP module, which ends the checkpoint
            out += [("model.norm.weight", (h,), "norm"), ("lm_head.weight", (s["vocab"], h), "bf16")]
        if i >= dense + moe:  # the MTP module's own tensors
            out += [(p + "embed_tokens.weight", (s["vocab"], h), "bf16"),
                    (p + "enorm.weight", (h,), "norm"), (p + "hnorm.weight", (h,), "norm"),
                    (p + "eh_proj.weight", (h, 2 * h), "bf16")]
        qk = s["nope"] + s["rope"]
        out += [
            (p + "input_layernorm.weight", (h,), "norm"),
            (p + "self_attn.q_a_proj.weight", (s["q_lora"], h), "fp8"),
            (p + "self_attn.q_a_layernorm.weight", (s["q_lora"],), "norm"),
            (p + "self_attn.q_b_proj.weight", (s["heads"] * qk, s["q_lora"]), "fp8"),
            (p + "self_attn.kv_a_proj_with_mqa.weight", (s["kv_lora"] + s["rope"], h), "fp8"),
            (p + "self_attn.kv_a_layernorm.weight", (s["kv_lora"],), "norm"),
            (p + "self_attn.kv_b_proj.weight", (s["heads"] * (s["nope"] + s["v"]), s["kv_lora"]), "fp8"),
            (p + "self_attn.o_proj.weight", (h, s["heads"] * s["v"]), "fp8"),
            (p + "post_attention_layernorm.weight", (h,), "norm"),
        ]
        if i < dense:
            out += [(p + f"mlp.{n}.weight", shape, "fp8") for n, shape in
                    [("gate_proj", (s["ffn"], h)), ("up_proj", (s["ffn"], h)), ("down_proj", (h, s["ffn"]))]]
            continue
        f = s["moe_ffn"]
        out += [(p + "mlp.gate.weight", (s["experts"], h), "bf16"),
                (p + "mlp.gate.e_score_correction_bias", (s["experts"],), "f32")]
        for e in range(s["experts"]):
            out += [(p + f"mlp.experts.{e}.{n}.weight", shape, "fp8") for n, shape in
                    [("gate_proj", (f, h)), ("up_proj", (f, h)), ("down_proj", (h, f))]]
        out += [(p + f"mlp.shared_experts.{n}.weight", shape, "fp8") for n, shape in
                [("gate_proj", (f, h)), ("up_proj", (f, h)), ("down_proj", (h, f))]]
        if i >= dense + moe:
            out += [(p + "shared_head.norm.weight", (h,), "norm"),
                    (p + "shared_head.head.weight", (s["vocab"], h), "bf16")]
    if not mtp:
        out += [("model.norm.weight", (h,), "norm"), ("lm_head.weight", (s["vocab"], h), "bf16")]
    return out


def stored(tensors_):
    """The stored tensors: each FP8 weight followed by its `weight_scale_inv`."""
    for name, shape, kind in tensors_:
        if kind == "fp8":
            yield name, shape, "F8_E4M3", ("codes", shape)
            grid = (-(-shape[0] // 128), -(-shape[1] // 128))
            yield name + "_scale_inv", grid, "F32", ("scales", shape)
        elif kind == "f32":
            yield name, shape, "F32", ("bias", shape)
        else:
            yield name, shape, "BF16", (kind, shape)


def nbytes(dtype, shape):
    return int(np.prod(shape)) * {"F8_E4M3": 1, "F32": 4, "BF16": 2}[dtype]


def values(rng, what, shape):
    """Random bytes of one tensor: E4M3 codes of magnitude 0.25..3.75 (never NaN), block scales
    that give rows of std about 1/sqrt(fan_in), BF16 of std about 1/sqrt(fan_in) (embeddings 0.5)."""
    n = int(np.prod(shape))
    if what == "codes":
        b = np.frombuffer(rng.bytes(n), np.uint8)
        return (b & 0x87) | ((((b >> 3) & 3) + 5) << 3).astype(np.uint8)
    if what == "scales":
        grid = (-(-shape[0] // 128), -(-shape[1] // 128))
        s = rng.uniform(0.5, 1.0, grid).astype(np.float32) / np.float32(1.6 * shape[1] ** 0.5)
        return s
    if what == "bias":
        return rng.uniform(-0.01, 0.01, shape).astype(np.float32)
    if what == "norm":
        return np.full(shape, 0x3F80, np.uint16)  # 1.0
    # BF16: sign, an exponent two octaves wide around 1/sqrt(fan_in), random mantissa.
    std = 0.5 if shape[0] >= 100_000 else shape[-1] ** -0.5
    e = int(np.floor(np.log2(std))) + 127 - 1
    b = np.frombuffer(rng.bytes(2 * n), np.uint16)
    return (b & 0x807F) | (((b >> 7) & 1).astype(np.uint16) + e) << 7


def write(d, s, layers=(1, 1, 1), seed=0):
    """Writes the checkpoint into `d` (shards, index, config, tokenizer); returns its bytes."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    dense, moe, mtp = layers
    items = list(stored(tensors(s, dense, moe, mtp)))
    mtp_prefix = f"model.layers.{dense + moe}."
    shards, cur, size = [], [], 0
    for it in items:
        b = nbytes(it[2], it[1])
        # The MTP module starts a shard of its own, so `without_mtp` can leave its shards out.
        starts_mtp = it[0].startswith(mtp_prefix) and not any(c[0].startswith(mtp_prefix) for c in cur)
        if cur and (size + b > SHARD or starts_mtp):
            shards.append(cur)
            cur, size = [], 0
        cur.append(it)
        size += b
    shards.append(cur)
    rng = np.random.default_rng(seed)
    weight_map, total = {}, 0
    for k, shard in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):06d}.safetensors"
        header, off = {}, 0
        for name, shape, dtype, _ in shard:
            n = nbytes(dtype, shape)
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
            weight_map[name] = fname
        header["__metadata__"] = {"format": "pt"}
        hb = json.dumps(header, separators=(",", ":")).encode()
        hb += b" " * (-len(hb) % 8)
        with open(d / fname, "wb") as f:
            f.write(struct.pack("<Q", len(hb)) + hb)
            for name, shape, dtype, (what, full) in shard:
                rows = full[0] if what in ("codes", "bf16") else None
                step = max(1, (64 << 20) // max(1, nbytes(dtype, full) // full[0])) if rows else None
                if rows and rows > step:  # large tensors a row block at a time
                    for r in range(0, rows, step):
                        f.write(values(rng, what, (min(step, rows - r), *full[1:])).tobytes())
                else:
                    f.write(values(rng, what, full).tobytes())
        total += off
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (d / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (d / "config.json").write_text(json.dumps(config(s, dense + moe, dense, mtp), indent=2))
    (d / "tokenizer.json").write_text(json.dumps(gen.tokenizer_json(s["vocab"]), ensure_ascii=False))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": gen.SPECIALS[0], "eos_token": gen.SPECIALS[1],
        "add_bos_token": True, "model_max_length": 163840}))
    return total


def without_mtp(src, dst):
    """`src` without its MTP module: the other shards hard-linked (wharf refuses symbolic links
    inside a model folder), index and config rewritten."""
    src, dst = Path(src).resolve(), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    config = json.loads((src / "config.json").read_text())
    prefix = f"model.layers.{config['num_hidden_layers']}."
    index = json.loads((src / "model.safetensors.index.json").read_text())
    mtp_files = {f for k, f in index["weight_map"].items() if k.startswith(prefix)}
    kept = {k: f for k, f in index["weight_map"].items() if f not in mtp_files}
    assert not any(k.startswith(prefix) for k in kept), "MTP tensors share a shard with others"
    for f in sorted(set(kept.values())):
        (dst / f).unlink(missing_ok=True)
        os.link(src / f, dst / f)
    total = sum((src / f).stat().st_size for f in set(kept.values()))
    (dst / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                   "weight_map": kept}, indent=2))
    config["num_nextn_predict_layers"] = 0
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (dst / f).write_bytes((src / f).read_bytes())
    return dst


def config(s, layers, dense, mtp):
    """DeepSeek-V3's config.json with this checkpoint's depth and shape."""
    return {
        "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1, "ep_size": 1,
        "first_k_dense_replace": dense, "hidden_act": "silu", "hidden_size": s["hidden"],
        "initializer_range": 0.02, "intermediate_size": s["ffn"], "kv_lora_rank": s["kv_lora"],
        "max_position_embeddings": 163840, "model_type": "deepseek_v3", "moe_intermediate_size": s["moe_ffn"],
        "moe_layer_freq": 1, "n_group": s["n_group"], "n_routed_experts": s["experts"], "n_shared_experts": 1,
        "norm_topk_prob": True, "num_attention_heads": s["heads"], "num_experts_per_tok": s["top_k"],
        "num_hidden_layers": layers, "num_key_value_heads": s["heads"], "num_nextn_predict_layers": mtp,
        "pretraining_tp": 1, "q_lora_rank": s["q_lora"], "qk_nope_head_dim": s["nope"],
        "qk_rope_head_dim": s["rope"],
        "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                "weight_block_size": [128, 128]},
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                         "original_max_position_embeddings": 4096, "type": "yarn"},
        "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "seq_aux": True,
        "tie_word_embeddings": False, "topk_group": s["topk_group"], "topk_method": "noaux_tc",
        "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": True,
        "v_head_dim": s["v"], "vocab_size": s["vocab"],
    }


if __name__ == "__main__":
    import sys
    import time

    t = time.time()
    shape = KIMI_K2 if "--kimi" in sys.argv else V3
    n = write(sys.argv[1], shape)
    print(f"{n / 1e9:.2f} GB in {time.time() - t:.0f} s")
