"""Timing children: wall seconds and peak RSS from GNU time, and the small table printer."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

TIME = "/usr/bin/time"


class Fail(Exception):
    pass


def loadavg():
    try:
        return Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return ["?", "?", "?"]


def timed(cmd, env=None, ok=(0,), cwd=None):
    """Runs `cmd` under GNU time: (seconds, peak RSS bytes, stdout, returncode)."""
    r = timed_cpu(cmd, env=env, ok=ok, cwd=cwd)
    return r["secs"], r["rss"], r["stdout"], r["rc"]


def timed_cpu(cmd, env=None, ok=(0,), cwd=None):
    """Runs `cmd` under GNU time: wall `secs`, `cpu` (user + system seconds), peak `rss` bytes,
    `stdout` and `rc`."""
    cmd = [str(c) for c in cmd]
    full_env = dict(os.environ, **(env or {}))
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        p = subprocess.run([TIME, "-f", "%e %U %S %M", "-o", t.name, *cmd], capture_output=True, text=True,
                           env=full_env, cwd=cwd)
        fields = t.read().split()
    if p.returncode not in ok:
        raise Fail(f"{' '.join(cmd[:6])} ... exited {p.returncode}:\n{p.stderr[-2000:]}")
    # GNU time prints "Command exited with non-zero status N" first when N != 0.
    secs, user, sys_, kb = (float(f) for f in fields[-4:])
    return {"secs": secs, "cpu": user + sys_, "rss": int(kb) * 1024, "stdout": p.stdout, "rc": p.returncode}


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def gb(n):
    return f"{n / 1e9:.3f} GB"


def mib(n):
    return f"{n / 2**20:.0f} MiB"


def table(out, title, header, rows):
    """`out` collects lines; rows are lists of already formatted cells."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out.append(title)
    out.append("  " + "  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    out.append("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def _status(pid):
    """VmRSS, RssAnon, RssFile and VmHWM of a live process, in bytes (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def sampled(cmd, env=None, every=0.02):
    """Runs `cmd`, reading its /proc status every `every` seconds: wall `secs`, peak private
    memory `anon` (RssAnon: what the process itself allocated), peak mapped file pages `file`
    (RssFile: page cache it has mapped, which the kernel can drop), peak `rss` (VmHWM, both),
    `stdout`, `rc`. A spike shorter than `every` can be missed; VmHWM cannot."""
    import threading
    import time

    cmd = [str(c) for c in cmd]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "VmHWM": 0}
    out = {}

    def drain():
        out["stdout"], out["stderr"] = p.communicate()

    t = threading.Thread(target=drain)
    t.start()
    while p.poll() is None:
        s = _status(p.pid)
        if s:
            for k, v in s.items():
                peak[k] = max(peak[k], v)
        time.sleep(every)
    t.join()
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise Fail(f"{' '.join(cmd[:6])} ... exited {p.returncode}:\n{out.get('stderr', '')[-2000:]}")
    return {"secs": secs, "anon": peak["RssAnon"], "file": peak["RssFile"], "rss": peak["VmHWM"],
            "stdout": out.get("stdout", ""), "stderr": out.get("stderr", ""), "rc": p.returncode}
