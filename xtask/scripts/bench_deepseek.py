"""`cargo xtask bench --deepseek [--kimi] [--keep]`: every wharf path on a checkpoint of DeepSeek-V3's
real shapes (issue 17), with peak private memory.

The checkpoint (`bench/deepseek.py`, fixed seed, generated once into `target/bench-deepseek/`
and reused while the generator is unchanged): hidden 7168, vocab 129280, MLA (q_lora 1536,
kv_lora 512, 128 heads), one dense layer (FFN 18432), one MoE layer of 256 routed experts of
2048 plus a shared expert, and the MTP module (layer 2: embed, enorm/hnorm, eh_proj, a full MoE
block, shared head), native FP8 with 128x128 `weight_scale_inv` (partial blocks: kv_a is 576
rows), shards of about 4.3 GB with an index. `--kimi`: Kimi-K2's shape instead (384 experts, 64
heads, vocab 163840).

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


def checkpoint(work, kimi):
    """The generated checkpoint, regenerated when the generator changed."""
    name = "kimi-k2" if kimi else "v3"
    d = work / name
    stamp = hashlib.sha256(Path(deepseek.__file__).read_bytes()).hexdigest()
    if (d / "generator.sha256").exists() and (d / "generator.sha256").read_text() == stamp:
        return d
    if d.exists():
        shutil.rmtree(d)
    log(f"generating the real-shape {name} checkpoint into {d} (about 32 GB, a few minutes)")
    t0 = time.time()
    deepseek.write(d, deepseek.KIMI_K2 if kimi else deepseek.V3)
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wharf", required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--kimi", action="store_true")
    ap.add_argument("--only", help="comma-separated command labels to run")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    src = checkpoint(args.work, args.kimi)
    no_mtp = deepseek.without_mtp(src, args.work / (src.name + "-no-mtp"))
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
    rows, failed = [], []
    for label, inp, cmd, out in cmds:
        if only and not any(w in label for w in only):
            continue
        log(label)
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
        if out and not label.startswith("export"):
            shutil.rmtree(out, ignore_errors=True) if Path(out).is_dir() else Path(out).unlink(missing_ok=True)
    for label in ("h800", "apple"):
        shutil.rmtree(o(label), ignore_errors=True)
    evict(src)
    files = sorted(src.glob("*.safetensors"))
    cat = timed(["sh", "-c", 'cat "$@" > /dev/null', "sh", *files])
    n = source_bytes(src)
    rows.append(["cat (cold-ish)", f"{cat[0]:.1f}", "", "", f"{cat[1] / 1e9:.2f}", f"{n / cat[0] / 1e9:.2f}", ""])
    lines = []
    shape = "Kimi-K2" if args.kimi else "DeepSeek-V3"
    table(lines, f"{shape} real shapes, {n / 1e9:.1f} GB FP8 source ({src})",
          ["command", "seconds", "RssAnon GB", "RssFile GB", "VmHWM GB", "source GB/s", "output GB"], rows)
    print("\n".join(lines))
    (args.work / f"results-{src.name}.json").write_text(json.dumps(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
