"""Writes one committed attack file (or folder) per RELIABILITY.md class for safetensors (S),
sharded indexes (I) and GGUF (G) into tests/data/attacks/{safetensors,index,gguf}/.

Stdlib only, deterministic. Names start with the class; `*_ok_*` files are legal edge cases that
must be accepted. `converters/tests/attacks_formats.rs` checks each one; the fuzz replay test
feeds them to every fuzz property too. Run from the repository root:
`python3 xtask/scripts/gen_attack_formats.py`.
"""

import json
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "attacks")


def put(kind, name, data):
    with open(os.path.join(ROOT, kind, name), "wb") as f:
        f.write(data)


def st(header, data=b"", raw_len=None, pad=True):
    """A safetensors file from a header object (or raw bytes) and a data section."""
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    n = len(h) if raw_len is None else raw_len
    return struct.pack("<Q", n) + h + data


def safetensors():
    f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)
    good = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    put("safetensors", "S1_len_past_eof.safetensors", struct.pack("<Q", 1000) + b"{" + b" " * 63)
    put("safetensors", "S2_len_2_63.safetensors", struct.pack("<Q", 1 << 63) + b"{}      ")
    put("safetensors", "S2_len_over_cap.safetensors", struct.pack("<Q", 100_000_001) + b"{}      ")
    put("safetensors", "S3_empty.safetensors", b"")
    put("safetensors", "S3_seven_bytes.safetensors", b"\x08\x00\x00\x00\x00\x00\x00")
    put("safetensors", "S4_bad_utf8.safetensors", st(b"{\"\xff\xfe\":1}"))
    put("safetensors", "S4_not_json.safetensors", st(b"hello world"))
    put("safetensors", "S4_top_array.safetensors", st(b"[1,2,3]"))
    put("safetensors", "S4_leading_junk.safetensors", st(b"xx" + json.dumps(good).encode(), f32(1, 2)))
    dup = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}'
    put("safetensors", "S5_duplicate_name.safetensors", st(dup, f32(1)))
    alias = {f"t{i}": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]} for i in range(1000)}
    put("safetensors", "S6_aliasing.safetensors", st(alias, f32(1, 2, 3, 4)))
    hole = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
    put("safetensors", "S7_hole.safetensors", st(hole, f32(0, 0, 1)))
    valid = st(good, f32(1, 2))
    put("safetensors", "S8_trailing_zip.safetensors", valid + b"PK\x05\x06" + b"\x00" * 18)
    put("safetensors", "S9_truncated.safetensors", valid[:-2])
    rev = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}
    put("safetensors", "S10_reversed.safetensors", st(rev, f32(1, 2)))
    past = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    put("safetensors", "S10_past_end.safetensors", st(past, f32(1, 2)))
    over = {"a": {"dtype": "F32", "shape": [1 << 32, 1 << 32, 16], "data_offsets": [0, 0]}}
    put("safetensors", "S11_overflow.safetensors", st(over))
    size = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}
    put("safetensors", "S12_size_mismatch.safetensors", st(size, f32(1, 2)))
    f4 = {"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}
    put("safetensors", "S13_sub_byte.safetensors", st(f4, b"\x00\x00"))
    obj = {"a": {"dtype": "object", "shape": [1], "data_offsets": [0, 8]}}
    put("safetensors", "S14_dtype_object.safetensors", st(obj, b"\x00" * 8))
    fnuz = {"a": {"dtype": "F8_E4M3FNUZ", "shape": [1], "data_offsets": [0, 1]}}
    put("safetensors", "S14_dtype_fnuz.safetensors", st(fnuz, b"\x00"))
    meta = {"__metadata__": {"format": {"nested": "x"}}, **good}
    put("safetensors", "S15_nested_metadata.safetensors", st(meta, f32(1, 2)))
    put("safetensors", "S16_deep_nesting.safetensors", st(b"[" * 100_000 + b"]" * 100_000))
    put("safetensors", "S17_ok_nan_weights.safetensors", st(good, f32(float("nan"), float("inf"))))
    edge = {"empty": {"dtype": "F32", "shape": [0, 4096], "data_offsets": [0, 0]},
            "scalar": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}
    put("safetensors", "S18_ok_empty_and_scalar.safetensors", st(edge, f32(3)))
    put("safetensors", "S19_zlib_polyglot.safetensors", b"\x78\x9c" + valid[2:])


def index_dir(name, weight_map, shards, total=None, links=()):
    d = os.path.join(ROOT, "index", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    idx = {"metadata": {"total_size": total if total is not None else 8}, "weight_map": weight_map}
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump(idx, f, indent=2)
    for fname, tensors in shards.items():
        header = {}
        off = 0
        for t in tensors:
            header[t] = {"dtype": "F32", "shape": [1], "data_offsets": [off, off + 4]}
            off += 4
        with open(os.path.join(d, fname), "wb") as f:
            f.write(st(header, b"\x00" * off))
    for link, target in links:
        os.symlink(target, os.path.join(d, link))


def index():
    one = "model-00001-of-00002.safetensors"
    two = "model-00002-of-00002.safetensors"
    index_dir("I1_dotdot", {"a": "../x.safetensors", "b": two}, {two: ["b"]})
    index_dir("I1_absolute", {"a": "/etc/passwd", "b": two}, {two: ["b"]})
    index_dir("I1_sub_dotdot", {"a": "sub/../../x.safetensors", "b": two}, {two: ["b"]})
    index_dir("I2_symlink_shard", {"a": one, "b": two}, {two: ["b"]},
              links=[(one, "/etc/hostname")])
    index_dir("I3_missing_shard", {"a": one, "b": two}, {two: ["b"]})
    index_dir("I4_not_in_shard", {"a": one, "b": two}, {one: ["x"], two: ["b"]})
    index_dir("I4_unindexed", {"a": one, "b": two}, {one: ["a", "z"], two: ["b"]})
    index_dir("I4_two_shards", {"a": one, "b": two}, {one: ["a", "b"], two: ["b"]})
    index_dir("I5_total_size_lies", {"a": one, "b": two}, {one: ["a"], two: ["b"]}, total=999)


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


def kv(key, vtype, payload):
    return gstr(key) + struct.pack("<I", vtype) + payload


def tinfo(name, dims, ggml_type, offset):
    return gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) \
        + struct.pack("<IQ", ggml_type, offset)


def gguf(kvs=(), tensors=(), data=b"", version=3, magic=b"GGUF", n_kv=None, n_t=None, align=32):
    head = magic + struct.pack("<I", version)
    head += struct.pack("<QQ", len(tensors) if n_t is None else n_t, len(kvs) if n_kv is None else n_kv)
    body = b"".join(kvs) + b"".join(tensors)
    out = head + body
    out += b"\x00" * (-len(out) % align)
    return out + data


ARCH = kv("general.architecture", STR, gstr("llama"))


def ggufs():
    t = [tinfo("a", [8], 0, 0)]
    d = b"\x00" * 32
    put("gguf", "G1_magic_fugg.gguf", gguf([ARCH], t, d, magic=b"FUGG"))
    for v in (0, 1, 4, 0x03000000):
        put("gguf", f"G1_version_{v:x}.gguf", gguf([ARCH], t, d, version=v))
    put("gguf", "G2_n_kv_huge.gguf", gguf([ARCH], t, d, n_kv=0x055555555555555A))
    put("gguf", "G2_n_tensors_max.gguf", gguf([ARCH], t, d, n_t=(1 << 64) - 1))
    put("gguf", "G3_string_len_max.gguf",
        gguf([ARCH, gstr("k") + struct.pack("<I", STR) + struct.pack("<Q", (1 << 64) - 1) + b"abc"]))
    put("gguf", "G3_string_past_end.gguf",
        gguf([ARCH, gstr("k") + struct.pack("<I", STR) + struct.pack("<Q", 4096) + b"abc"]))
    put("gguf", "G4_u8_array_huge.gguf",
        gguf([ARCH, kv("k", ARR, struct.pack("<IQ", U8, 1 << 40) + b"\x01\x02")]))
    put("gguf", "G4_str_array_huge.gguf",
        gguf([ARCH, kv("k", ARR, struct.pack("<IQ", STR, 1 << 40) + gstr("x"))]))
    put("gguf", "G5_type_13.gguf", gguf([ARCH, kv("k", 13, b"\x00" * 8)], t, d))
    put("gguf", "G5_array_of_array.gguf",
        gguf([ARCH, kv("k", ARR, struct.pack("<IQ", ARR, 1) + struct.pack("<IQ", U8, 1) + b"\x01")], t, d))
    put("gguf", "G6_empty_key.gguf", gguf([ARCH, kv("", U32, struct.pack("<I", 1))], t, d))
    put("gguf", "G6_duplicate_key.gguf", gguf([ARCH, ARCH], t, d))
    for name, val in (("zero", struct.pack("<I", 0)), ("13", struct.pack("<I", 13))):
        put("gguf", f"G7_alignment_{name}.gguf", gguf([ARCH, kv("general.alignment", U32, val)], t, d))
    put("gguf", "G7_alignment_i32.gguf",
        gguf([ARCH, kv("general.alignment", I32, struct.pack("<i", 32))], t, d))
    put("gguf", "G8_five_dims.gguf", gguf([ARCH], [tinfo("a", [1, 1, 1, 1, 8], 0, 0)], d))
    put("gguf", "G8_million_dims.gguf",
        gguf([ARCH], [gstr("a") + struct.pack("<I", 1_000_000) + b"\x01" * 64], d))
    put("gguf", "G9_ok_zero_dim.gguf", gguf([ARCH], [tinfo("a", [0, 8], 0, 0)]))
    put("gguf", "G9_negative_dim.gguf", gguf([ARCH], [tinfo("a", [(1 << 64) - 8], 0, 0)], d))
    put("gguf", "G10_ne_overflow.gguf", gguf([ARCH], [tinfo("a", [(1 << 63) - 1, 2, 1, 1], 0, 0)], d))
    put("gguf", "G10_dim_2_42.gguf", gguf([ARCH], [tinfo("a", [(1 << 42) + 1, 1 << 42], 0, 0)], d))
    # 39 (MXFP4) became a real type after RELIABILITY.md was written; 40 is the first unknown.
    put("gguf", "G11_type_40.gguf", gguf([ARCH], [tinfo("a", [32], 40, 0)], d * 4))
    put("gguf", "G11_type_minus_1.gguf", gguf([ARCH], [tinfo("a", [32], 0xFFFFFFFF, 0)], d * 4))
    put("gguf", "G11_not_block_multiple.gguf", gguf([ARCH], [tinfo("a", [33], 8, 0)], d * 4))
    put("gguf", "G12_overlap.gguf", gguf([ARCH], [tinfo("a", [8], 0, 0), tinfo("b", [8], 0, 0)], d * 2))
    put("gguf", "G12_misaligned.gguf", gguf([ARCH], [tinfo("a", [8], 0, 4)], d * 2))
    put("gguf", "G12_pad_overflow.gguf",
        gguf([ARCH], [tinfo("a", [0x7FFFFFFFFFFFFFC0], 24, 0), tinfo("b", [0x7FFFFFFFFFFFFFC0], 24, 0)], d))
    put("gguf", "G13_past_eof.gguf", gguf([ARCH], [tinfo("a", [8], 0, 1 << 20)], d))
    put("gguf", "G14_short_region.gguf", gguf([ARCH], [tinfo("a", [64], 0, 0)], d))
    put("gguf", "G15_long_name.gguf", gguf([ARCH], [tinfo("a" * 64, [8], 0, 0)], d))
    put("gguf", "G15_duplicate_tensor.gguf",
        gguf([ARCH], [tinfo("a", [8], 0, 0), tinfo("a", [8], 0, 32)], d * 2))
    # G16: semantic metadata, validated where it is consumed (the model description, the
    # tokenizer): the container itself is well-formed.
    sem = [ARCH, kv("llama.block_count", U32, struct.pack("<I", 1_000_000)),
           kv("llama.context_length", U32, struct.pack("<I", 16)),
           kv("llama.embedding_length", U32, struct.pack("<I", 8)),
           kv("llama.feed_forward_length", U32, struct.pack("<I", 8)),
           kv("llama.attention.head_count", U32, struct.pack("<I", 1)),
           kv("tokenizer.ggml.model", STR, gstr("gpt2")),
           kv("tokenizer.ggml.tokens", ARR, struct.pack("<IQ", STR, 2) + gstr("a") + gstr("b")),
           kv("tokenizer.ggml.scores", ARR, struct.pack("<IQ", U8, 2) + b"\x01\x02"),
           kv("tokenizer.ggml.bos_token_id", U32, struct.pack("<I", 99999))]
    put("gguf", "G16_semantic.gguf", gguf(sem, t, d))
    jinja = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    put("gguf", "G17_ok_jinja_template.gguf",
        gguf([ARCH, kv("tokenizer.chat_template", STR, gstr(jinja))], t, d))


if __name__ == "__main__":
    for k in ("safetensors", "index", "gguf"):
        os.makedirs(os.path.join(ROOT, k), exist_ok=True)
    safetensors()
    index()
    ggufs()
