"""Split GGUF (issue 17): wharf's split sets byte-identical, shard for shard, to `llama-gguf-split
--split` of wharf's unsplit file (built from the pinned llama-cpp-python sdist by
`build_gguf_split.py`), cut by tensor count and by size; llama.cpp opens the first shard of a
wharf set and computes the unsplit file's logits."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from .common import llama_cpp_logits, require

GGUF_SPLIT = Path(sys.executable).parent / "llama-gguf-split"


def shards(prefix):
    return sorted(prefix.parent.glob(prefix.name + "-0*-of-0*.gguf"))


def check(ctx):
    """See the module doc."""
    ids = ctx.prompt_ids("deepseek_v3")
    for model, mix in [("deepseek_v3", "Q4_K_M"), ("qwen2", "Q8_0")]:
        whole = ctx.path("split", model, "whole.gguf")
        ctx.wharf("quantize", ctx.model(model), "-o", whole, "--scheme", f"gguf:{mix}")
        base = ctx.wharf_logits(whole, ids)
        for flag, value in [("--split-max-tensors", "20"), ("--split-max-size", "1M")]:
            label = f"{model} {mix} {flag} {value}"
            ours = ctx.path("split", model, f"wharf{flag}", "m.gguf")
            ctx.wharf("quantize", ctx.model(model), "-o", ours, "--scheme", f"gguf:{mix}", flag, value)
            theirs = ctx.path("split", model, f"ref{flag}", "m")
            theirs.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([GGUF_SPLIT, "--split", flag, value, whole, theirs], check=True, capture_output=True)
            a, b = shards(ours.parent / "m"), shards(theirs)
            require(len(a) >= 2, f"{label}: wharf wrote {len(a)} files")
            require([p.name for p in a] == [p.name for p in b], f"{label}: files {[p.name for p in a]} vs {[p.name for p in b]}")
            differ = [p.name for p, q in zip(a, b) if p.read_bytes() != q.read_bytes()]
            require(not differ, f"{label}: shards differ from llama-gguf-split's: {differ}")
            theirs_logits = llama_cpp_logits(a[0], ids)
            unsplit = llama_cpp_logits(whole, ids)
            gap = float(np.abs(theirs_logits - unsplit).max())
            require(gap == 0.0, f"{label}: llama.cpp's logits on the split set differ from the unsplit file by {gap}")
            ours_gap = float(np.abs(ctx.wharf_logits(a[0], ids) - base).max())
            require(ours_gap == 0.0, f"{label}: wharf infer on the set differs from the unsplit file by {ours_gap}")
            print(f"  {label}: {len(a)} shards byte-identical to llama-gguf-split; llama.cpp loads the set, "
                  f"logits equal to the unsplit file's (and wharf's on it)")
