"""Record per-tensor sha256 digests of reference outputs (llama.cpp GGUFs, mlx-lm folders).

The reference files themselves are large; byte-identity tests only need their tensor table and
the digest of each tensor's bytes. Run once when the fixtures change:

    python xtask/scripts/digest_reference.py ../shared/fixtures/reference tests/data/fixtures/reference
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from safetensors import safe_open


def gguf_digest(path):
    r = GGUFReader(str(path))
    kvs = []
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        types = [t.name for t in f.types]
        vals = f.contents()
        if isinstance(vals, list):
            blob = json.dumps(vals, ensure_ascii=False).encode()
            kvs.append({"key": f.name, "types": types, "len": len(vals),
                        "sha256": hashlib.sha256(blob).hexdigest()})
        else:
            kvs.append({"key": f.name, "types": types, "value": vals})
    tensors = []
    for t in r.tensors:
        data = np.asarray(t.data).tobytes()
        tensors.append({"name": t.name, "type": t.tensor_type.name,
                        "ne": [int(x) for x in t.shape], "offset": int(t.data_offset - r.data_offset),
                        "nbytes": int(t.n_bytes), "sha256": hashlib.sha256(data).hexdigest()})
    return {"alignment": r.alignment, "kv": kvs, "tensors": tensors}


def safetensors_digest(path):
    out = {}
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                out[name] = info
                continue
            a, b = info["data_offsets"]
            fh.seek(base + a)
            data = fh.read(b - a)
            out[name] = {"dtype": info["dtype"], "shape": info["shape"],
                         "sha256": hashlib.sha256(data).hexdigest()}
    return out


def main(src, dst):
    src, dst = Path(src), Path(dst)
    gg = {p.name: gguf_digest(p) for p in sorted((src / "gguf").glob("*.gguf"))}
    (dst / "gguf").mkdir(parents=True, exist_ok=True)
    (dst / "gguf" / "digests.json").write_text(json.dumps(gg, indent=1, ensure_ascii=False) + "\n")
    for d in sorted((src / "mlx").iterdir()):
        files = {p.name: safetensors_digest(p) for p in sorted(d.glob("*.safetensors"))}
        (dst / "mlx" / d.name).mkdir(parents=True, exist_ok=True)
        (dst / "mlx" / d.name / "digests.json").write_text(json.dumps(files, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
