"""wharf's outputs checked by the real consumers: gguf-py, llama.cpp (llama-cpp-python) and
the safetensors library. Run by `cargo xtask interop`; exits non-zero on the first failure."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

MODELS = ["llama", "llama_tied", "qwen2", "mistral_bf16", "deepseek_v3"]
# llama.cpp's own F32 conversions agree with transformers to about 4e-3 on these models
# (fixtures README); the bound leaves room for its different summation order.
LOGIT_TOL = 1e-2


def wharf(args, exe):
    out = subprocess.run([exe, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"wharf {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout


def check_gguf_py(path):
    import gguf

    r = gguf.GGUFReader(str(path))
    assert r.fields["general.architecture"].contents(), path
    for t in r.tensors:
        assert np.asarray(t.data).nbytes == t.n_bytes, t.name


def check_llama_cpp(path, golden_dir):
    from llama_cpp import Llama

    golden = json.loads((golden_dir / "golden.json").read_text())
    ids = golden["prompt_ids"] if "prompt_ids" in golden else golden["input_ids"]
    want = np.load(golden_dir / "logits_all.npy").reshape(len(ids), -1)
    llm = Llama(model_path=str(path), n_ctx=64, logits_all=True, verbose=False, n_threads=2)
    llm.eval(ids)
    got = np.asarray(llm.scores[: len(ids)], dtype=np.float32)[:, : want.shape[1]]
    err = float(np.max(np.abs(got - want)))
    agree = float(np.mean(got.argmax(-1) == want.argmax(-1)))
    print(f"  llama.cpp {path.name}: max |logit - golden| = {err:.2e}, top-1 agreement {agree:.3f}")
    assert err <= LOGIT_TOL and agree == 1.0, f"{path.name}: logits off (max {err})"


def check_safetensors(path, source):
    from safetensors.numpy import load_file

    ours, theirs = load_file(str(path)), load_file(str(source))
    assert ours.keys() == theirs.keys()
    for k in theirs:
        assert ours[k].dtype == theirs[k].dtype and np.array_equal(ours[k], theirs[k]), k


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wharf", required=True)
    ap.add_argument("--fixtures", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    a = ap.parse_args()
    for model in MODELS:
        out = a.work / f"{model}.gguf"
        wharf(["convert", str(a.fixtures / "models" / model), "-o", str(out), "--dtype", "f32"], a.wharf)
        check_gguf_py(out)
        check_llama_cpp(out, a.fixtures / "golden" / model)
    st = a.work / "llama.safetensors"
    wharf(["convert", str(a.fixtures / "models" / "llama_sharded"), "-o", str(st)], a.wharf)
    check_safetensors(st, a.fixtures / "models" / "llama" / "model.safetensors")
    print("  safetensors: sharded llama -> one file, every tensor equal")
    print("interop: all checks passed")


if __name__ == "__main__":
    main()
