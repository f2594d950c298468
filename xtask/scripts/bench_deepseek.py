"""`cargo xtask bench --deepseek [--model v3|kimi-k2|dense] [--only LABELS]`: every wharf path on a
checkpoint of DeepSeek-V3's real shapes (issue 17), with peak private memory.

The checkpoint (`bench/deepseek.py`, fixed seed, generated once into `target/bench-deepseek/`
and reused while the generator is unchanged): hidden 7168, vocab 129280, MLA (q_lora 1536,
kv_lora 512, 128 heads), one dense layer (FFN 18432), one MoE layer of 256 routed experts of
2048 plus a shared expert, and the MTP module (layer 2: embed, enorm/hnorm, eh_proj, a full MoE
block, shared head), native FP8 with 128x128 `weight_scale_inv` (partial blocks: kv_a is 576
rows), shards of about 4.3 GB with an index. `--model kimi-k2`: one MoE layer of Kimi-K2's shape
(384 experts, 64 heads, vocab 163840); `--model dense`: two dense layers holding as many weights as
V3's dense and MoE layers (FFN 272384), the "dense model of the same size" throughput is compared
with. One checkpoint is kept at a time (the disk); the v3 run adds the generation speed of the
FP8 checkpoint read in place, of a Q8_0 GGUF of it in wharf, and of that GGUF in llama.cpp.

Each command runs with the source evicted from the page cache first ("cold-ish": the host may
still cache it), RAYON_NUM_THREADS=2, and /proc/PID/status read every 20 ms: peak RssAnon (what
wharf allocated: the figure the 1.5 GB goal is about), peak RssFile (source pages mapped, which
the kernel drops under pressure) and VmHWM (both). GB/s is source bytes read / wall seconds;
`cat` is the same source read cold-ish. Outputs are deleted after each command (disk).
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import deepseek  # noqa: E402
from bench.run import Fail, log, sampled, table, timed  # noqa: E402

WENV = {"RAYON_NUM_THREADS": "2"}


def evict(d):
    """Flushes and drops `d`'s files (symlinks followed) from the page cache."""
    for f in Path(d).iterdir():
        if f.is_file():
            fd = os.open(f.resolve(), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def source_bytes(d):
    return sum(f.resolve().stat().st_size for f in Path(d).glob("*.safetensors"))


MODELS = {  # name: (shape, (dense, moe, mtp) layers)
    "v3": (deepseek.V3, (1, 1, 1)),
    "kimi-k2": (deepseek.KIMI_K2, (0, 1, 0)),
    "dense": (deepseek.DENSE_SAME_SIZE, (2, 0, 0)),
}


def checkpoint(work, name):
    """The generated checkpoint `name`, regenerated when its shape or the generator changed."""
    shape, layers = MODELS[name]
    d = work / name
    stamp = hashlib.sha256(json.dumps([shape, layers, deepseek.VERSION], sort_keys=True).encode()).hexdigest()
    if (d / "generator.sha256").exists() and (d / "generator.sha256").read_text() == stamp:
        return d
    for other in MODELS:  # the disk holds one checkpoint
        shutil.rmtree(work / other, ignore_errors=True)
        shutil.rmtree(work / (other + "-no-mtp"), ignore_errors=True)
    log(f"generating the real-shape {name} checkpoint into {d} (15-32 GB, a few minutes)")
    t0 = time.time()
    deepseek.write(d, shape, layers)
    log(f"generated in {time.time() - t0:.0f} s")
    (d / "generator.sha256").write_text(stamp)
    return d


def run(exe, args, src, out):
    """One wharf command, measured; its output removed afterwards."""
    evict(src)
    r = sampled([exe, *args], env=WENV)
    out = Path(out)
    files = [out] if out.is_file() else [f for f in out.rglob("*") if f.is_file()] if out.exists() else []
    r["out_bytes"] = sum(f.stat().st_size for f in files)
    return r


IDS = "0,17,345,902,5,1000,77,256"


def wharf_gen(exe, model):
    """wharf infer's prompt and generation tokens/s, the second of two runs (the first warms the
    page cache). wharf's generate re-runs the prompt first, so its time is taken out."""
    for _ in range(2):
        r = sampled([exe, "infer", model, "--ids", IDS, "--max-new", "8", "--json"], env=WENV)
    j = json.loads(r["stdout"])
    n, wp = len(j["generated"]), j["prompt_tokens_per_s"]
    gen_s = n / j["generate_tokens_per_s"] - len(IDS.split(",")) / wp
    return wp, (n - 1) / gen_s, r


def llama_gen(py, model):
    """llama.cpp's (llama-cpp-python, 2 threads) prompt and generation tokens/s, second run."""
    child = Path(__file__).resolve().parent / "bench" / "llama_child.py"
    for _ in range(2):
        r = sampled([py, child, "infer", model, IDS, "8"])
    j = json.loads(r["stdout"].strip().splitlines()[-1])
    return j["n_prompt"] / j["prompt_s"], j["n_gen_steps"] / j["gen_s"], r


def generation(exe, src, outs, lines):
    """FP8 in place vs a Q8_0 GGUF of the same model (wharf), and that GGUF in llama.cpp. `src`
    is the checkpoint without its MTP module, so both are the same model of the same size (and
    both fit in memory, where infer keeps pages mapped)."""
    q8 = outs / "q8.gguf"
    log("quantize gguf:Q8_0 (for generation)")
    sampled([exe, "quantize", src, "-o", q8, "--scheme", "gguf:Q8_0"], env=WENV)
    rows = []
    fp = wharf_gen(exe, src)
    q = wharf_gen(exe, q8)
    try:
        ll = llama_gen(sys.executable, q8)
    except Fail as e:
        ll = None
        lines.append(f"  llama.cpp could not run the Q8_0 GGUF: {str(e).strip().splitlines()[-1]}")
    for label, r in [("wharf infer FP8 (HF, in place, no MTP)", fp), ("wharf infer Q8_0 GGUF", q),
                     ("llama.cpp Q8_0 GGUF", ll)]:
        if r:
            rows.append([label, f"{r[0]:.2f}", f"{r[1]:.2f}", f"{r[2]['anon'] / 1e9:.2f}",
                         f"{r[2]['file'] / 1e9:.2f}"])
    table(lines, "Generation, 8-token prompt, 8 greedy tokens, warm page cache, 2 threads",
          ["model", "prompt tok/s", "gen tok/s", "RssAnon GB", "RssFile GB"], rows)
    lines.append(f"  FP8 / Q8_0 generation: {fp[1] / q[1]:.2f}x (goal >= 0.8)")
    if ll:
        lines.append(f"  wharf / llama.cpp on the Q8_0 GGUF: {q[1] / ll[1]:.2f}x (goal >= 0.5)")
    q8.unlink(missing_ok=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wharf", required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--model", choices=sorted(MODELS), default="v3")
    ap.add_argument("--only", help="comma-separated command labels to run")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    src = checkpoint(args.work, args.model)
    has_mtp = MODELS[args.model][1][2] > 0
    no_mtp = deepseek.without_mtp(src, args.work / (src.name + "-no-mtp")) if has_mtp else src
    exe, outs = args.wharf, args.work / "out"
    shutil.rmtree(outs, ignore_errors=True)
    outs.mkdir()
    o = lambda n: outs / n  # noqa: E731
    cmds = [
        ("quantize gguf:Q4_K_M", src, ["quantize", src, "-o", o("q4km.gguf"), "--scheme", "gguf:Q4_K_M"], o("q4km.gguf")),
        ("quantize gguf:Q2_K", src, ["quantize", src, "-o", o("q2k.gguf"), "--scheme", "gguf:Q2_K"], o("q2k.gguf")),
        ("quantize mlx4", src, ["quantize", src, "-o", o("mlx4"), "--scheme", "mlx4"], o("mlx4")),
        # BF16 of the whole checkpoint is 60 GB; without the MTP module it is 30 GB.
        ("convert --dtype bf16 (no MTP)", no_mtp, ["convert", no_mtp, "-o", o("bf16"), "--dtype", "bf16"], o("bf16")),
        ("export h800", src, ["export", src, "--target", "h800", "-o", o("h800")], o("h800")),
        ("verify h800", o("h800"), ["verify", o("h800")], None),
        ("export apple-silicon", src, ["export", src, "--target", "apple-silicon", "-o", o("apple")], o("apple")),
        ("verify apple-silicon", o("apple"), ["verify", o("apple")], None),
    ]
    only = set(args.only.split(",")) if args.only else None
    gen_lines = []
    if args.model == "v3" and (not only or any("generation" in w for w in only)):
        generation(exe, no_mtp, outs, gen_lines)
        print("\n".join(gen_lines), flush=True)
    rows, failed = [], []
    for label, inp, cmd, out in cmds:
        if only is not None and not any(w in label for w in only):
            continue
        log(label)
        if not Path(inp).exists():
            failed.append(label)
            rows.append([label, "NOT RUN", "its input failed", "", "", "", ""])
            continue
        try:
            r = run(exe, cmd, inp, out or inp)
        except Fail as e:
            failed.append(label)
            rows.append([label, "FAILED", str(e).strip().splitlines()[-1][:80], "", "", "", ""])
            continue
        n = source_bytes(inp)
        rows.append([label, f"{r['secs']:.1f}", f"{r['anon'] / 1e9:.2f}", f"{r['file'] / 1e9:.2f}",
                     f"{r['rss'] / 1e9:.2f}", f"{n / r['secs'] / 1e9:.2f}", f"{r['out_bytes'] / 1e9:.2f}"])
        log(" ".join(rows[-1]))
        # Outputs go once measured (an export once verified): the disk holds one at a time.
        gone = out if out and not label.startswith("export") else inp if label.startswith("verify") else None
        if gone:
            shutil.rmtree(gone, ignore_errors=True) if Path(gone).is_dir() else Path(gone).unlink(missing_ok=True)
    for label in ("h800", "apple"):
        shutil.rmtree(o(label), ignore_errors=True)
    evict(src)
    files = sorted(src.glob("*.safetensors"))
    cat = timed(["sh", "-c", 'cat "$@" > /dev/null', "sh", *files])
    n = source_bytes(src)
    rows.append(["cat (cold-ish)", f"{cat[0]:.1f}", "", "", f"{cat[1] / 1e9:.2f}", f"{n / cat[0] / 1e9:.2f}", ""])
    lines = []
    shape = {"v3": "DeepSeek-V3", "kimi-k2": "Kimi-K2", "dense": "Dense (V3 layers, same size)"}[args.model]
    table(lines, f"{shape} real shapes, {n / 1e9:.1f} GB FP8 source ({src})",
          ["command", "seconds", "RssAnon GB", "RssFile GB", "VmHWM GB", "source GB/s", "output GB"], rows)
    print("\n".join(lines + [""] + gen_lines))
    (args.work / f"results-{src.name}.json").write_text(json.dumps(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
