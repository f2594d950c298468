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
    quiet_quantize(src, dst, params, mix)


def quiet_quantize(src, dst, params, label):
    """llama_model_quantize with libllama's fd-2 log kept out of the report unless it fails."""
    import llama_cpp

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
            raise CheckFailed(f"llama_model_quantize {src} {label} returned {rc}:\n{log.read().decode(errors='replace')}")


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


IMATRIX_MIXES = ["Q4_K_M", "Q4_0"]


def write_imatrix(f32, gguf_path, dat_path):
    """Deterministic importance statistics for every 2-D weight of `f32`, written as llama-imatrix
    writes them (GGUF: `<name>.in_sum2` + `<name>.counts`; legacy .dat), and the normalised
    vectors `load_imatrix` (tools/quantize/quantize.cpp) hands to libllama for each format."""
    import gguf

    reader = gguf.GGUFReader(str(f32))
    w = gguf.GGUFWriter(str(gguf_path), arch="imatrix")
    w.add_string("general.type", "imatrix")
    w.add_array("imatrix.datasets", ["interop.txt"])
    w.add_uint32("imatrix.chunk_count", 5)
    w.add_uint32("imatrix.chunk_size", 512)
    from_gguf, from_dat, dat = {}, {}, bytearray()
    weights = [t for t in reader.tensors if len(t.shape) >= 2]
    dat += np.int32(len(weights)).tobytes()
    for k, t in enumerate(weights):
        n = int(t.shape[0])  # gguf-py shapes are innermost first
        sums = ((np.arange(n, dtype=np.float32) * (k + 3)) % 53 * np.float32(0.37) + np.float32(0.05)).astype(np.float32)
        count = np.float32(0.0 if k == 1 else 2.6 + k % 4)  # lround: 3, 4, 5, 6; 0 -> all ones
        w.add_tensor(f"{t.name}.in_sum2", sums.reshape(1, n))
        w.add_tensor(f"{t.name}.counts", np.array([[count]], dtype=np.float32))
        rounded = np.float32(np.floor(count + np.float32(0.5)))
        from_gguf[t.name] = sums / rounded if rounded > 0 else np.ones(n, dtype=np.float32)
        ncall = k % 3  # legacy: sums / ncall when ncall > 0
        name = t.name.encode()
        dat += np.int32(len(name)).tobytes() + name + np.int32(ncall).tobytes() + np.int32(n).tobytes() + sums.tobytes()
        from_dat[t.name] = sums / np.float32(ncall) if ncall > 0 else sums
    dat += np.int32(7).tobytes() + np.int32(len(b"legacy.txt")).tobytes() + b"legacy.txt"
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    dat_path.write_bytes(bytes(dat))
    return {"gguf": (from_gguf, "interop.txt", 5), "dat": (from_dat, "legacy.txt", 7)}


def llama_quantize_imatrix(src, dst, mix, path, entries, dataset, chunks):
    """llama-quantize --imatrix PATH as its main() does it: the normalised vectors as
    `params.imatrix`, and the four quantize.imatrix.* KV overrides."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{mix}")
    params.nthread = 2
    keep = [(name.encode(), np.ascontiguousarray(v, dtype=np.float32)) for name, v in entries.items()]
    data = (llama_cpp.llama_model_imatrix_data * (len(keep) + 1))()
    for i, (name, v) in enumerate(keep):
        data[i].name, data[i].size = name, v.size
        data[i].data = v.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    kv = (llama_cpp.llama_model_kv_override * 5)()
    overrides = [("quantize.imatrix.file", 3, str(path)), ("quantize.imatrix.dataset", 3, dataset),
                 ("quantize.imatrix.entries_count", 0, len(keep)), ("quantize.imatrix.chunks_count", 0, chunks)]
    for o, (key, tag, val) in zip(kv, overrides):
        o.key, o.tag = key.encode(), tag
        if tag == 3:
            o.value.val_str = val.encode()[:127]
        else:
            o.value.val_i64 = val
    params.imatrix = ctypes.cast(data, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    params.kv_overrides = ctypes.cast(kv, ctypes.POINTER(llama_cpp.llama_model_kv_override))
    quiet_quantize(src, dst, params, f"{mix} with imatrix")


def check_imatrix(ctx):
    """`wharf quantize --imatrix` (GGUF and legacy .dat) against llama-quantize with the same
    importance vectors and KV overrides, and `--allow-requantize` from a Q8_0 file: whole files
    byte-identical."""
    f32 = ctx.path("imatrix", "f32.gguf")
    ctx.wharf("convert", ctx.model("llama"), "-o", f32, "--dtype", "f32")
    im_gguf, im_dat = ctx.path("imatrix", "llama.imatrix.gguf"), ctx.path("imatrix", "llama.imatrix.dat")
    loaded = write_imatrix(f32, im_gguf, im_dat)
    failures, rows = [], []
    cases = [("gguf", im_gguf, mix) for mix in IMATRIX_MIXES] + [("dat", im_dat, "Q4_0")]
    for fmt_name, path, mix in cases:
        entries, dataset, chunks = loaded[fmt_name]
        ours = ctx.path("imatrix", f"wharf-{fmt_name}-{mix}.gguf")
        theirs = ctx.path("imatrix", f"llamacpp-{fmt_name}-{mix}.gguf")
        plain = ctx.path("imatrix", f"plain-{mix}.gguf")
        llama_quantize_imatrix(f32, theirs, mix, path, entries, dataset, chunks)
        ctx.wharf("quantize", f32, "-o", ours, "--scheme", f"gguf:{mix}", "--imatrix", path)
        ctx.wharf("quantize", f32, "-o", plain, "--scheme", f"gguf:{mix}")
        diff = gguf_diff(ours, theirs)
        if diff is not None:
            failures.append(f"llama {mix} ({fmt_name} imatrix): {diff}")
        elif theirs.read_bytes()[-(1 << 20):] == plain.read_bytes()[-(1 << 20):]:
            failures.append(f"llama {mix} ({fmt_name} imatrix): the imatrix changed nothing")
        rows.append(f"{mix}/{fmt_name} {'identical' if diff is None else 'DIFFERS'}")
    # --allow-requantize: llama.cpp's own Q8_0 of llama, requantized to Q4_0 by both.
    import llama_cpp

    q8 = ctx.fixtures / "reference" / "gguf" / "llama-llamacpp-Q8_0.gguf"
    ours, theirs = ctx.path("imatrix", "wharf-requant.gguf"), ctx.path("imatrix", "llamacpp-requant.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.nthread, params.allow_requantize = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, 2, True
    quiet_quantize(q8, theirs, params, "Q8_0 -> Q4_0")
    ctx.wharf("quantize", q8, "-o", ours, "--scheme", "gguf:Q4_0", "--allow-requantize")
    diff = gguf_diff(ours, theirs)
    if diff is not None:
        failures.append(f"llama Q8_0 -> Q4_0 --allow-requantize: {diff}")
    rows.append(f"Q8_0->Q4_0 requantize {'identical' if diff is None else 'DIFFERS'}")
    print("  llama with imatrix: " + ", ".join(rows))
    if failures:
        raise CheckFailed("wharf quantize --imatrix differs from llama-quantize:\n    " + "\n    ".join(failures))
