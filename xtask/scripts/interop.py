"""wharf's outputs checked by the real consumers: gguf-py, llama.cpp (llama-cpp-python), the
safetensors library, mlx-lm, transformers and compressed-tensors (on CPU torch), and vLLM's FP8
block-loader rules. Run by `cargo xtask interop`.
Every check runs and prints its numbers; the script exits non-zero if any failed.
The checks live in `interop/` (one module per consumer family)."""

import argparse
import sys
import time
import traceback
from pathlib import Path

from interop import bundles, convert, fp8_rule, mlx_checks, onnx_torch, quantize, split, torch_checks
from interop.common import CheckFailed, Ctx

CHECKS = [
    ("F32 GGUF in gguf-py and llama.cpp vs transformers", convert.check_f32),
    ("safetensors: sharded folder merged", convert.check_safetensors),
    ("ONNX initializers vs onnx.numpy_helper", onnx_torch.check_numpy_helper),
    ("ONNX (--config) and PyTorch sources as GGUF in llama.cpp", onnx_torch.check_gguf_in_llama_cpp),
    ("mlx-lm: wharf mlx4 vs mlx_lm.convert and mlx's forward pass", mlx_checks.check),
    ("bundles pi5/pi4 in llama.cpp", bundles.check_gguf_bundles),
    ("bundles apple-silicon in mlx-lm", bundles.check_apple),
    ("bundles h800: vLLM FP8 block loader conditions", bundles.check_h800),
    ("bundles h800 in transformers (CPU)", torch_checks.check_h800),
    ("DeepSeek FP8 block rule with partial blocks vs torch", fp8_rule.check),
    ("DeepSeek FP8 -> BF16/F32 folders in transformers and mlx-lm", torch_checks.check_fp8_to_bf16),
    ("compressed-tensors decompresses wharf's FP8/INT4 folders", torch_checks.check_compressed_tensors),
    ("wharf quantize vs llama-quantize, byte for byte", quantize.check_bytes),
    ("wharf quantize --imatrix/--allow-requantize vs llama-quantize", quantize.check_imatrix),
    ("split GGUF vs llama-gguf-split, loaded by llama.cpp", split.check),
    ("llama per-type logits in llama.cpp (informational)", quantize.logit_table),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wharf", required=True)
    ap.add_argument("--fixtures", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--only", help="run only the checks whose title contains this text")
    a = ap.parse_args()
    ctx = Ctx(a.wharf, a.fixtures, a.work)
    failed = []
    for title, check in CHECKS:
        if a.only and a.only not in title:
            continue
        print(f"== {title}", flush=True)
        t0 = time.monotonic()
        try:
            check(ctx)
            print(f"   PASS ({time.monotonic() - t0:.1f} s)", flush=True)
        except CheckFailed as e:
            failed.append(title)
            print(f"   FAIL: {e}", flush=True)
        except Exception:  # a consumer crashing is a failed check too; keep running the others
            failed.append(title)
            print(f"   FAIL (error):\n{traceback.format_exc()}", flush=True)
    if failed:
        sys.exit("interop: FAILED: " + "; ".join(failed))
    print("interop: all checks passed")


if __name__ == "__main__":
    main()
