"""Generate GGML quantization test vectors with libggml's own `ggml_quantize_chunk`.

Writes one safetensors file with, per case `<case>`:
  `<case>.input`    f32 [rows, n_per_row]
  `<case>.imatrix`  f32 [n_per_row] (positive importance weights)
  `<case>.<TYPE>`   u8  [rows, row_bytes]  quantized without an importance matrix
  `<case>.<TYPE>.imatrix` u8 [rows, row_bytes] quantized with `<case>.imatrix`

Needs llama-cpp-python (its bundled libggml-base.so) and numpy + safetensors:

    python xtask/scripts/gen_ggml_vectors.py tests/data/vectors/ggml/ggml_quants.safetensors
    python xtask/scripts/gen_ggml_vectors.py /tmp/fuzz.safetensors --fuzz 40 --seed 7

`--fuzz N` writes N random cases instead of the fixed ones (for local soak tests; see
`quantizers/tests/ggml_testvec.rs`, which reads extra files from `WHARF_GGML_VECTORS`).
"""
import argparse
import ctypes
import glob
import os

import numpy as np
from safetensors.numpy import save_file

# ggml_type ids and (block elements, block bytes), from ggml.h / ggml-common.h.
TYPES = {
    "Q4_0": (2, 32, 18),
    "Q4_1": (3, 32, 20),
    "Q5_0": (6, 32, 22),
    "Q5_1": (7, 32, 24),
    "Q8_0": (8, 32, 34),
    "Q2_K": (10, 256, 84),
    "Q3_K": (11, 256, 110),
    "Q4_K": (12, 256, 144),
    "Q5_K": (13, 256, 176),
    "Q6_K": (14, 256, 210),
    "TQ1_0": (34, 256, 54),
    "TQ2_0": (35, 256, 66),
    "MXFP4": (39, 32, 17),
}


def load_ggml():
    import llama_cpp

    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    lib = ctypes.CDLL(sorted(glob.glob(os.path.join(libdir, "libggml-base.so*")))[0])
    f = lib.ggml_quantize_chunk
    f.restype = ctypes.c_size_t
    f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                  ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    return f


def quantize(fn, name, x, imatrix):
    tid, be, bb = TYPES[name]
    rows, n = x.shape
    out = np.zeros((rows, n // be * bb), dtype=np.uint8)
    x = np.ascontiguousarray(x, dtype=np.float32)
    im = None if imatrix is None else np.ascontiguousarray(imatrix, dtype=np.float32)
    written = fn(tid, x.ctypes.data, out.ctypes.data, 0, rows, n,
                 None if im is None else im.ctypes.data)
    assert written == out.size, (name, written, out.size)
    return out


def edge_rows(rng, n):
    """Rows that hit the codecs' special cases, one 256-block (8 small blocks) each."""
    blocks = []
    z = np.zeros(256, np.float32)
    blocks.append(z)                                             # all zero
    blocks.append(np.full(256, 0.375, np.float32))               # constant positive
    blocks.append(np.full(256, -1.5, np.float32))                # constant negative
    blocks.append(np.abs(rng.standard_normal(256)).astype(np.float32))   # all positive
    blocks.append(-np.abs(rng.standard_normal(256)).astype(np.float32))  # all negative
    b = z.copy(); b[37] = 3.0; blocks.append(b)                 # one spike
    blocks.append((rng.standard_normal(256) * 1e-20).astype(np.float32))  # below GROUP_MAX_EPS
    blocks.append((rng.standard_normal(256) * 1e-7).astype(np.float32))   # tiny
    blocks.append((rng.standard_normal(256) * 3e4).astype(np.float32))    # large
    blocks.append((rng.integers(-8, 8, 256) * 0.25).astype(np.float32))   # on a grid (ties)
    blocks.append((rng.integers(-3, 4, 256) * 0.5 + 0.25).astype(np.float32))
    b = rng.standard_normal(256).astype(np.float32); b[::32] = 0; b[5] = 40; blocks.append(b)
    # mixed sub-blocks: zero, tiny, normal, huge
    b = rng.standard_normal(256).astype(np.float32)
    b[:16] = 0; b[32:48] *= 1e-12; b[64:80] *= 1e3; b[128:160] = 2.0; blocks.append(b)
    b = np.linspace(-1, 1, 256, dtype=np.float32); blocks.append(b)
    b = np.where(rng.random(256) < 0.9, 0, rng.standard_normal(256)).astype(np.float32)
    blocks.append(b)
    blocks.append((rng.standard_normal(256) ** 3).astype(np.float32))
    # 32-blocks whose maximum sits just below / at a power of two (MXFP4's exponent, rounding)
    for ks in ([-20, -3, 0, 1, 5, 10, 13, 20], [-1, 2, 3, 7, 11, 12, 15, 24]):
        b = (rng.uniform(-0.5, 0.5, 256)).astype(np.float32)
        for i, k in enumerate(ks):
            top = np.float32(2.0 ** k)
            b[32 * i:32 * i + 32] *= top
            b[32 * i + i] = np.nextafter(top, np.float32(0)) if i % 2 == 0 else -top
        blocks.append(b)
    allb = np.concatenate(blocks)
    return allb.reshape(-1, n)


def cases(rng, fuzz):
    n = 512
    if fuzz:
        for i in range(fuzz):
            rows = int(rng.integers(1, 5))
            kind = i % 4
            if kind == 0:
                x = rng.standard_normal((rows, n)) * 10 ** rng.uniform(-3, 2)
            elif kind == 1:
                x = rng.standard_t(2, (rows, n)) * 0.05
            elif kind == 2:
                x = rng.uniform(-1, 1, (rows, n)) + rng.uniform(-1, 1)
            else:
                x = rng.standard_normal((rows, n)) * (rng.random((rows, n)) < 0.3)
            yield f"fuzz{i}", x.astype(np.float32)
        return
    yield "gauss", (rng.standard_normal((4, n)) * np.array([[0.02], [1.0], [0.3], [7.0]])).astype(np.float32)
    yield "heavy", (rng.standard_t(2, (4, n)) * 0.05).astype(np.float32)
    yield "edge", edge_rows(rng, n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--fuzz", type=int, default=0)
    ap.add_argument("--seed", type=int, default=20240601)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    fn = load_ggml()
    tensors = {}
    for case, x in cases(rng, a.fuzz):
        imatrix = (rng.random(x.shape[1]) ** 2 * 10 + 1e-3).astype(np.float32)
        tensors[f"{case}.input"] = x
        tensors[f"{case}.imatrix"] = imatrix
        for name in TYPES:
            tensors[f"{case}.{name}"] = quantize(fn, name, x, None)
            tensors[f"{case}.{name}.imatrix"] = quantize(fn, name, x, imatrix)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    save_file(tensors, a.out)


if __name__ == "__main__":
    main()
