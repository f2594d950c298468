"""DeepSeek's native FP8 block layout, partial edge blocks included (issue 17): wharf's
`quantize --scheme fp8-block` equals torch's computation of DeepSeek's rule tensor for tensor
(`gen_fp8_block_reference.py`), on the DeepSeek fixture and on a generated llama whose every
dimension leaves a partial block; DeepSeek's own dequantization rule (`inference/kernel.py`
`weight_dequant`: each 128x128 block times its scale, edge blocks cut) of those bytes equals
`wharf convert --dtype f32`, and transformers runs the dequantized model to wharf's logits.

transformers 5.23's CPU FP8 loader cannot take partial blocks (`Fp8Dequantize._dequantize_one`
derives the block from the scale grid: rows 192 with 2 scale rows become 96-row blocks, and the
released V3's 576-row `kv_a_proj_with_mqa` with 5 scale rows raises), so the h800 check and this
one hand transformers the DeepSeek-rule dequantization (`h800_for_transformers`)."""

import json
import sys
from pathlib import Path

from .common import require

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gen_fp8_block_reference as rule  # noqa: E402

BLOCK = 128


def load(folder):
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def dequantize(codes, scale):
    """DeepSeek's `weight_dequant`: every element times its block's scale, in f32."""
    rows, cols = codes.shape
    s = scale.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)[:rows, :cols]
    return codes.float() * s


def partial_blocks(folder):
    """FP8 weights of a folder whose shape is not whole 128x128 blocks."""
    import torch

    return [k for k, v in load(folder).items()
            if v.dtype == torch.float8_e4m3fn and (v.shape[0] % BLOCK or v.shape[1] % BLOCK)]


def h800_for_transformers(folder, out):
    """`folder` (DeepSeek FP8) dequantized by DeepSeek's rule into an f32 folder transformers
    loads without its FP8 path; tokenizer and config files copied, `quantization_config` dropped."""
    import shutil

    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    t = load(folder)
    dense = {}
    for k, v in t.items():
        if k.endswith("_scale_inv"):
            continue
        dense[k] = dequantize(v, t[k + "_scale_inv"]) if v.dtype == torch.float8_e4m3fn else v.float()
    save_file(dense, str(out / "model.safetensors"), metadata={"format": "pt"})
    for f in Path(folder).iterdir():
        if f.name.startswith("tokenizer") or f.name in ("special_tokens_map.json", "generation_config.json"):
            shutil.copy(f, out / f.name)
    config = json.loads((Path(folder) / "config.json").read_text())
    config.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(config))
    return out


def odd_llama(d):
    """A BF16 llama whose every Linear leaves partial blocks: hidden 320, 5 heads of 64, one KV
    head (k/v 64 rows), FFN 448."""
    import torch
    from safetensors.torch import save_file

    h, heads, kv, ffn, vocab, layers = 320, 5, 1, 448, 512, 2
    g = torch.Generator().manual_seed(17)
    w = lambda *s: (torch.randn(*s, generator=g) * s[-1] ** -0.5).to(torch.bfloat16)  # noqa: E731
    t = {"model.embed_tokens.weight": (torch.randn(vocab, h, generator=g) * 0.5).to(torch.bfloat16),
         "model.norm.weight": torch.ones(h, dtype=torch.bfloat16), "lm_head.weight": w(vocab, h)}
    for i in range(layers):
        p = f"model.layers.{i}."
        t.update({p + "input_layernorm.weight": torch.ones(h, dtype=torch.bfloat16),
                  p + "post_attention_layernorm.weight": torch.ones(h, dtype=torch.bfloat16),
                  p + "self_attn.q_proj.weight": w(heads * 64, h), p + "self_attn.k_proj.weight": w(kv * 64, h),
                  p + "self_attn.v_proj.weight": w(kv * 64, h), p + "self_attn.o_proj.weight": w(h, heads * 64),
                  p + "mlp.gate_proj.weight": w(ffn, h), p + "mlp.up_proj.weight": w(ffn, h),
                  p + "mlp.down_proj.weight": w(h, ffn)})
    d.mkdir(parents=True, exist_ok=True)
    save_file(t, str(d / "model.safetensors"), metadata={"format": "pt"})
    (d / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": h, "intermediate_size": ffn,
        "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": 64, "num_hidden_layers": layers,
        "vocab_size": vocab, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 512,
        "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "bfloat16", "bos_token_id": 0,
        "eos_token_id": 1}))
    return d


def check(ctx):
    """See the module doc."""
    import torch

    from .torch_checks import LOGIT_TOL, logit_gap, transformers_forward

    sources = [("deepseek_v3", ctx.model("deepseek_v3")), ("llama-320", odd_llama(ctx.path("fp8rule", "llama-320")))]
    for label, src in sources:
        ours_dir = ctx.path("fp8rule", f"{label}-wharf")
        ctx.wharf("quantize", src, "-o", ours_dir, "--scheme", "fp8-block")
        theirs_dir = ctx.path("fp8rule", f"{label}-torch")
        rule.convert(src, theirs_dir)
        ours, theirs = load(ours_dir), load(theirs_dir)
        require(set(ours) == set(theirs), f"{label}: tensors in only one: {sorted(set(ours) ^ set(theirs))[:4]}")
        differ = [k for k in theirs if ours[k].dtype != theirs[k].dtype or ours[k].shape != theirs[k].shape
                  or not torch.equal(ours[k].view(torch.uint8), theirs[k].view(torch.uint8))]
        require(not differ, f"{label}: {len(differ)} tensors differ from DeepSeek's rule in torch, first {differ[:2]}")
        partial = partial_blocks(ours_dir)
        require(partial, f"{label}: no FP8 weight with a partial block")
        f32 = ctx.path("fp8rule", f"{label}-f32")
        ctx.wharf("convert", ours_dir, "-o", f32, "--dtype", "f32")
        deq, wharf_deq = h800_for_transformers(ours_dir, ctx.path("fp8rule", f"{label}-deq")), load(f32)
        for k, v in load(deq).items():
            require(torch.equal(v, wharf_deq[k]), f"{label}: `{k}` dequantizes differently")
        ids = list(range(3, 19))
        _, _, logits = transformers_forward(deq, ids)
        err = logit_gap(label, ctx.wharf_logits(ours_dir, ids), logits, LOGIT_TOL)
        shapes = sorted({tuple(ours[k].shape) for k in partial})
        print(f"  {label}: {len(theirs)} tensors equal DeepSeek's rule in torch byte for byte; {len(partial)} FP8 weights "
              f"with partial blocks (shapes {shapes}); DeepSeek's dequantization equals wharf's; "
              f"transformers vs wharf infer {err:.2e}")
