"""wharf quantize against llama-quantize (issue 3): byte comparisons per mix, and the per-type
logit table of wharf-quantized GGUFs run in llama.cpp."""

import ctypes
import os
import sys
import tempfile

import numpy as np

from .common import CheckFailed, llama_cpp_logits
from .convert import golden_logits

BYTE_MODELS = ["qwen2", "mistral_bf16", "deepseek_v3"]
BYTE_MIXES = ["Q4_0", "Q8_0", "Q4_K_M", "Q6_K", "Q2_K", "Q3_K_M", "Q5_K_M"]
# (model, mix) pairs that differ for a reason recorded here; printed as KNOWN MISMATCH, not failed.
KNOWN_MISMATCH = {}
TABLE_TYPES = ["F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S",
               "Q4_1", "Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K"]


def llama_quantize(src, dst, mix):
    """llama-quantize with its defaults, through libllama's C API (as the fixtures were made)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{mix}")
    params.nthread = 2
    # libllama prints its fallback warnings (k-quant rows that are not a multiple of 256) to fd 2;
    # keep them out of the report unless the call fails.
    with tempfile.TemporaryFile() as log:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if rc != 0:
            log.seek(0)
            raise CheckFailed(f"llama_model_quantize {src} {mix} returned {rc}:\n{log.read().decode(errors='replace')}")


def gguf_diff(ours, theirs):
    """First difference between two GGUF files, in gguf-py's terms (None if byte-identical)."""
    import gguf

    a, b = ours.read_bytes(), theirs.read_bytes()
    if a == b:
        return None
    ra, rb = gguf.GGUFReader(str(ours)), gguf.GGUFReader(str(theirs))
    ta, tb = {t.name: t for t in ra.tensors}, {t.name: t for t in rb.tensors}
    if list(ta) != list(tb):
        return f"tensor lists differ: only wharf {sorted(set(ta) - set(tb))[:4]}, only llama.cpp {sorted(set(tb) - set(ta))[:4]}"
    for name in tb:
        x, y = ta[name], tb[name]
        if x.tensor_type != y.tensor_type:
            return f"{name}: wharf chose {x.tensor_type.name}, llama-quantize {y.tensor_type.name}"
        da, db = np.asarray(x.data).tobytes(), np.asarray(y.data).tobytes()
        if da != db:
            first = next(i for i in range(min(len(da), len(db))) if da[i] != db[i]) if len(da) == len(db) else -1
            return f"{name} ({y.tensor_type.name}): bytes differ, {len(da)} vs {len(db)} bytes, first at {first}"
    fa = {k: f.contents() for k, f in ra.fields.items()}
    fb = {k: f.contents() for k, f in rb.fields.items()}
    keys = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
    if keys:
        return f"tensors identical; metadata differs: {[(k, fa.get(k), fb.get(k)) for k in keys[:3]]}"
    return f"tensors and metadata identical; files differ ({len(a)} vs {len(b)} bytes: layout/padding)"


def check_bytes(ctx):
    """Per mix: wharf quantize and llama-quantize on the same F32 GGUF, file and tensor bytes."""
    failures, known, identical = [], [], 0
    for model in BYTE_MODELS:
        f32 = ctx.path("quant", model, "f32.gguf")
        ctx.wharf("convert", ctx.model(model), "-o", f32, "--dtype", "f32")
        row = []
        for mix in BYTE_MIXES:
            ours, theirs = ctx.path("quant", model, f"wharf-{mix}.gguf"), ctx.path("quant", model, f"llamacpp-{mix}.gguf")
            llama_quantize(f32, theirs, mix)
            ctx.wharf("quantize", f32, "-o", ours, "--scheme", f"gguf:{mix}")
            diff = gguf_diff(ours, theirs)
            if diff is None:
                identical += 1
                row.append(f"{mix} identical")
            elif (model, mix) in KNOWN_MISMATCH:
                known.append(f"KNOWN MISMATCH {model} {mix}: {diff} ({KNOWN_MISMATCH[(model, mix)]})")
                row.append(f"{mix} KNOWN MISMATCH")
            else:
                failures.append(f"{model} {mix}: {diff}")
                row.append(f"{mix} DIFFERS")
        print(f"  {model}: " + ", ".join(row))
    for line in known:
        print(f"  {line}")
    total = len(BYTE_MODELS) * len(BYTE_MIXES)
    print(f"  {identical}/{total} (model, mix) files byte-identical to llama-quantize")
    if failures:
        raise CheckFailed("wharf quantize differs from llama-quantize:\n    " + "\n    ".join(failures))


def logit_table(ctx):
    """Informational: each wharf-quantized llama GGUF in llama.cpp against transformers' f32 logits."""
    f32 = ctx.path("quant", "llama", "f32.gguf")
    ctx.wharf("convert", ctx.model("llama"), "-o", f32, "--dtype", "f32")
    ids, want = golden_logits(ctx.golden("llama"))
    print(f"  {'type':<8} {'max |logit - golden|':>21} {'top-1 agreement':>16}")
    for t in TABLE_TYPES:
        out = ctx.path("quant", "llama", f"wharf-{t}.gguf")
        ctx.wharf("quantize", f32, "-o", out, "--scheme", f"gguf:{t}")
        got = llama_cpp_logits(out, ids)[:, : want.shape[1]]
        err = float(np.abs(got - want).max())
        agree = float(np.mean(got.argmax(-1) == want.argmax(-1)))
        print(f"  {t:<8} {err:>21.4f} {agree:>16.3f}")
