"""Writes small valid seed inputs for the fuzz targets into fuzz/corpus/<target>/.

Seeds are tiny on purpose (libFuzzer mutates the first few KiB): a safetensors file with a few
tensors of each dtype family, GGUF v3 files with every metadata value type (written by gguf-py,
the reference writer), shard indexes, and a bundle manifest. Run from the repository root with
the interop venv: `target/interop-venv/bin/python xtask/scripts/gen_fuzz_seeds.py`.
"""

import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    path = os.path.join(CORPUS, target, name)
    with open(path, "wb") as f:
        f.write(data)


def safetensors_seeds():
    from safetensors.numpy import save

    write("safetensors_header", "two_f32.safetensors",
          save({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, np.float32)}))
    write("safetensors_header", "mixed.safetensors",
          save({"i": np.arange(3, dtype=np.int64), "h": np.zeros((2, 2), np.float16),
                "u": np.array([1, 2], np.uint8)}, metadata={"format": "pt"}))
    write("safetensors_header", "empty.safetensors", save({}))


def gguf_seeds():
    import gguf

    for i, arch in enumerate(["llama", "qwen2"]):
        path = os.path.join(CORPUS, "gguf", f"{arch}.gguf")
        w = gguf.GGUFWriter(path, arch)
        w.add_block_count(1)
        w.add_uint8("t.u8", 7)
        w.add_int16("t.i16", -3)
        w.add_float64("t.f64", 0.5)
        w.add_bool("t.bool", True)
        w.add_string("t.str", "héllo")
        w.add_array("t.arr", [1, 2, 3])
        w.add_tensor("token_embd.weight", np.arange(64, dtype=np.float32).reshape(2, 32))
        w.add_tensor("blk.0.attn_norm.weight", np.ones(32, dtype=np.float16))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


def index_seeds():
    idx = {"metadata": {"total_size": 24},
           "weight_map": {"a": "model-00001-of-00002.safetensors",
                          "b": "model-00002-of-00002.safetensors"}}
    write("shard_index", "index.json", json.dumps(idx, indent=2).encode())
    write("shard_index", "no_metadata.json", json.dumps({"weight_map": {}}).encode())


def manifest_seed():
    digest = "0" * 64
    m = {
        "schema": "wharf.bundle/v1",
        "tool": {"name": "wharf", "version": "0.1.0"},
        "target": {"name": "pi5"},
        "source": {"name": "llama", "format": "hf-safetensors",
                   "files": [{"path": "config.json", "sha256": digest, "bytes": 2}]},
        "architecture": {"name": "llama"},
        "recipe": {"scheme": "gguf:Q4_K_M", "options": {}, "tensors": {"a": "Q4_K"}},
        "files": [{"path": "model.gguf", "sha256": digest, "bytes": 10},
                  {"path": "reference.json", "sha256": digest, "bytes": 3}],
        "reference": {"model": "model.gguf", "golden": "reference.json", "prompt_ids": [1, 2],
                      "thresholds": {"min_top1": 0.9, "decisive_margin": 1.0,
                                     "max_mean_kl": 0.15, "max_kl": 1.5},
                      "metrics": {"top1": 1.0, "top1_decisive": 1.0, "decisive_positions": 0,
                                  "mean_kl": 0.0, "max_kl": 0.0, "greedy": [3],
                                  "greedy_agreement": 1.0, "passed": True}},
    }
    write("manifest", "manifest.json", json.dumps(m, indent=2).encode())


def main():
    for t in ["safetensors_header", "gguf", "shard_index", "manifest"]:
        os.makedirs(os.path.join(CORPUS, t), exist_ok=True)
    safetensors_seeds()
    gguf_seeds()
    index_seeds()
    manifest_seed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
