"""Shared helpers: running wharf, reading logits from wharf and llama.cpp, failing with numbers."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np


class CheckFailed(Exception):
    """A consumer disagreed with wharf; the message carries the numbers."""


def require(cond, msg):
    if not cond:
        raise CheckFailed(msg)


class Ctx:
    """What every check needs: the wharf binary, the fixtures and a scratch folder."""

    def __init__(self, exe, fixtures, work):
        self.exe, self.fixtures, self.work = str(exe), Path(fixtures), Path(work)

    def model(self, name):
        return self.fixtures / "models" / name

    def golden(self, name):
        return self.fixtures / "golden" / name

    def prompt_ids(self, name="llama"):
        return [int(i) for i in np.load(self.golden(name) / "input_ids.npy").reshape(-1)]

    def path(self, *parts):
        """A fresh output path under the scratch folder (wharf refuses to overwrite)."""
        p = self.work.joinpath(*parts)
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def wharf(self, *args):
        args = [str(a) for a in args]
        out = subprocess.run([self.exe, *args], capture_output=True, text=True)
        if out.returncode != 0:
            raise CheckFailed(f"wharf {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
        return out.stdout

    def wharf_logits(self, model, ids):
        """`wharf infer MODEL --ids ... --logits-out X.npy`: f32 logits `[len(ids), vocab]`."""
        out = self.path("logits", "wharf.npy")
        self.wharf("infer", model, "--ids", ",".join(map(str, ids)), "--max-new", "0", "--logits-out", out)
        return np.load(out)


def llama_cpp_logits(gguf, ids):
    """llama.cpp's logits for every position of `ids` (one thread, so reductions are deterministic)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=64, logits_all=True, verbose=False, n_threads=1, seed=0)
    llm.eval(list(ids))
    got = np.array(llm.scores[: len(ids)], dtype=np.float32)
    del llm
    return got


def top2_margin(logits):
    s = np.sort(logits, axis=-1)
    return s[..., -1] - s[..., -2]


def llama_cpp_greedy(gguf, ids, n_new):
    """llama.cpp's own free-running greedy continuation: the prompt in one batch, then one token
    per decode step through its KV cache (a different code path from the all-positions batch)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=64, logits_all=True, verbose=False, n_threads=1, seed=0)
    llm.eval(list(ids))
    out = []
    for _ in range(n_new):
        t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(t)
        llm.eval([t])
    del llm
    return out


def fmt(xs, digits=3):
    return "[" + ", ".join(f"{x:.{digits}f}" for x in xs) + "]"


def greedy_report(label, theirs_greedy, greedy, margins, tol):
    """Free-running greedy tokens of a consumer against the manifest's `greedy`, counted up to the
    first position where wharf's top-2 margin is at most the logit tolerance: from there on a
    consumer within tolerance may legitimately pick the runner-up and the sequences diverge."""
    decisive = 0
    while decisive < len(greedy) and margins[decisive] > tol:
        decisive += 1
    agree = 0
    while agree < decisive and theirs_greedy[agree] == greedy[agree]:
        agree += 1
    print(
        f"    greedy: {label} {theirs_greedy} vs manifest {greedy}: {agree}/{decisive} agree before the first "
        f"wharf top-2 margin <= {tol:g} (margins {fmt(margins)}; the random fixtures have tiny margins, so "
        f"few positions are decisive)"
    )
    require(agree == decisive, f"{label} greedy token {agree} differs from the manifest at a decisive position")


def manifest(bundle):
    return json.loads((Path(bundle) / "manifest.json").read_text())
