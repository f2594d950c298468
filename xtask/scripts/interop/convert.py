"""F32 GGUF conversions in gguf-py and llama.cpp; safetensors merging in the safetensors library."""

import json

import numpy as np

from .common import llama_cpp_logits, require

MODELS = ["llama", "llama_tied", "qwen2", "mistral_bf16", "deepseek_v3"]
# llama.cpp's own F32 conversions agree with transformers to about 4e-3 on these models
# (fixtures README); the bound leaves room for its different summation order.
LOGIT_TOL = 1e-2


def check_gguf_py(path):
    import gguf

    r = gguf.GGUFReader(str(path))
    require(r.fields["general.architecture"].contents(), f"{path}: no general.architecture")
    for t in r.tensors:
        require(np.asarray(t.data).nbytes == t.n_bytes, f"{path}: {t.name} size mismatch")


def golden_logits(golden_dir):
    golden = json.loads((golden_dir / "golden.json").read_text())
    ids = golden["prompt_ids"] if "prompt_ids" in golden else golden["input_ids"]
    return ids, np.load(golden_dir / "logits_all.npy").reshape(len(ids), -1)


def check_f32(ctx):
    """wharf convert --dtype f32 reads in gguf-py and runs in llama.cpp like transformers."""
    for model in MODELS:
        out = ctx.path("convert", f"{model}.gguf")
        ctx.wharf("convert", ctx.model(model), "-o", out, "--dtype", "f32")
        check_gguf_py(out)
        ids, want = golden_logits(ctx.golden(model))
        got = llama_cpp_logits(out, ids)[:, : want.shape[1]]
        err = float(np.max(np.abs(got - want)))
        agree = float(np.mean(got.argmax(-1) == want.argmax(-1)))
        print(f"  llama.cpp {out.name}: max |logit - golden| = {err:.2e}, top-1 agreement {agree:.3f}")
        require(err <= LOGIT_TOL and agree == 1.0, f"{out.name}: logits off (max {err:.3e}, top-1 {agree:.3f})")


def check_safetensors(ctx):
    """A sharded HF folder merged into one safetensors file, read back by the safetensors library."""
    from safetensors.numpy import load_file

    st = ctx.path("convert", "llama.safetensors")
    ctx.wharf("convert", ctx.model("llama_sharded"), "-o", st)
    ours, theirs = load_file(str(st)), load_file(str(ctx.model("llama") / "model.safetensors"))
    require(ours.keys() == theirs.keys(), "merged safetensors: tensor names differ")
    for k in theirs:
        require(ours[k].dtype == theirs[k].dtype and np.array_equal(ours[k], theirs[k]), f"merged safetensors: {k} differs")
    print(f"  safetensors: sharded llama -> one file, all {len(theirs)} tensors equal")
