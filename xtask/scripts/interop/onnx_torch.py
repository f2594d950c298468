"""ONNX initializers against onnx's own `numpy_helper`; ONNX and PyTorch sources through llama.cpp."""

import numpy as np

from .common import llama_cpp_logits, require
from .convert import LOGIT_TOL, check_gguf_py, golden_logits

ONNX_MODELS = ["handmade_mlp.onnx", "llama_dynamo_noopt.onnx"]


def check_numpy_helper(ctx):
    """`wharf convert X.onnx -o Y.safetensors` keeps every initializer's name, dtype and value."""
    import onnx
    from onnx import numpy_helper
    from safetensors.numpy import load_file

    for name in ONNX_MODELS:
        src = ctx.fixtures / "reference" / "onnx" / name
        out = ctx.path("onnx", name.replace(".onnx", ".safetensors"))
        ctx.wharf("convert", src, "-o", out)
        ours = load_file(str(out))
        model = onnx.load(str(src), load_external_data=True)
        theirs = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        require(ours.keys() == theirs.keys(), f"{name}: initializer names differ")
        for k, v in theirs.items():
            o = ours[k]
            require(o.dtype == v.dtype and o.shape == v.shape, f"{name}: {k} is {o.dtype}{o.shape}, onnx says {v.dtype}{v.shape}")
            require(np.array_equal(o, v), f"{name}: {k} values differ")
        print(f"  {name}: all {len(theirs)} initializers equal numpy_helper's")


def check_gguf_in_llama_cpp(ctx):
    """The llama ONNX export (with --config) and the PyTorch folder, as F32 GGUF in llama.cpp."""
    sources = [
        ("llama_onnx", [ctx.fixtures / "reference" / "onnx" / "llama_dynamo_noopt.onnx", "--config", ctx.model("llama") / "config.json"]),
        ("llama_bin", [ctx.model("llama_bin")]),
    ]
    for label, args in sources:
        out = ctx.path("onnx", f"{label}.gguf")
        ctx.wharf("convert", *args, "-o", out, "--dtype", "f32")
        check_gguf_py(out)
        ids, want = golden_logits(ctx.golden("llama"))
        got = llama_cpp_logits(out, ids)[:, : want.shape[1]]
        err = float(np.max(np.abs(got - want)))
        agree = float(np.mean(got.argmax(-1) == want.argmax(-1)))
        print(f"  llama.cpp {out.name}: max |logit - golden/llama| = {err:.2e}, top-1 agreement {agree:.3f}")
        require(err <= LOGIT_TOL and agree == 1.0, f"{out.name}: logits off (max {err:.3e}, top-1 {agree:.3f})")
