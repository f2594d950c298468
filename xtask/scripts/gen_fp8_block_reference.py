"""DeepSeek's native FP8 block layout computed with torch, independently of wharf: the reference
`wharf quantize --scheme fp8-block` is compared with, tensor for tensor (the committed fixture
`tests/data/fixtures/reference/fp8/deepseek_v3_fp8_block`, and the interop check on generated
models whose dimensions are not multiples of 128).

DeepSeek's rule (DeepSeek-V3 `README_WEIGHTS.md`, "FP8 Weight Documentation"): every Linear weight
of attention and MLP (routed and shared experts included) is E4M3 with one f32 `weight_scale_inv`
per 128x128 block, `[ceil(out/128), ceil(in/128)]`; a block not aligned to 128 is zero-padded
before its scale is computed (so its scale is the amax of its real elements / 448) and the
padding is cut off after quantizing. A block of zeros gets scale 1. The MTP module's `eh_proj`,
the router, embeddings, `lm_head` and norms stay BF16, `e_score_correction_bias` F32.

Usage: gen_fp8_block_reference.py SRC_FOLDER OUT_FOLDER
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

BLOCK = 128


def quantized(name, t):
    """Whether DeepSeek stores this tensor as FP8."""
    linear = name.endswith("_proj.weight") or name.endswith("_proj_with_mqa.weight")
    return t.dim() == 2 and linear and not name.endswith("eh_proj.weight")


def block_quantize(w):
    """(codes, scale_inv) of a 2-D weight by DeepSeek's rule, computed in f32."""
    w = w.float()
    rows, cols = w.shape
    gr, gc = -(-rows // BLOCK), -(-cols // BLOCK)
    padded = torch.zeros(gr * BLOCK, gc * BLOCK, dtype=torch.float32)
    padded[:rows, :cols] = w
    blocks = padded.view(gr, BLOCK, gc, BLOCK)
    amax = blocks.abs().amax(dim=(1, 3))
    scale = amax / 448.0
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = (blocks / scale[:, None, :, None]).to(torch.float8_e4m3fn)
    codes = q.view(gr * BLOCK, gc * BLOCK)[:rows, :cols].contiguous()
    return codes, scale.contiguous()


def convert(src, out):
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for f in sorted(src.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    result = {}
    for name, t in tensors.items():
        if quantized(name, t):
            codes, scale = block_quantize(t)
            result[name] = codes
            result[name + "_scale_inv"] = scale
        elif name.endswith("e_score_correction_bias"):
            result[name] = t.float()
        elif t.is_floating_point():
            result[name] = t.to(torch.bfloat16)
        else:
            result[name] = t
    save_file(result, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    config.pop("quantization_config", None)
    for k in ("dtype", "torch_dtype"):
        if k in config:
            config[k] = "bfloat16"
    config["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                     "weight_block_size": [BLOCK, BLOCK]}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2])
