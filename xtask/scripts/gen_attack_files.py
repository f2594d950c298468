#!/usr/bin/env python3
"""Writes the hand-built attack files of RELIABILITY.md (P1-P13, Z1-Z8, O1-O6) into
tests/data/attacks/{torch,onnx}/<class>_<desc>.<ext>. Plain python3 stdlib only; nothing here
is ever unpickled or executed. Run from the repository root:

    python3 xtask/scripts/gen_attack_files.py

Pickle opcodes are written by hand (layouts from CPython Lib/pickletools.py); the zip layout
follows pytorch torch/serialization.py (`<top>/data.pkl`, `<top>/data/<key>`).
"""
import gzip
import io
import os
import struct
import sys
import zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "attacks")


# ---------- pickle opcodes ----------
def proto(): return b"\x80\x02"
def stop(): return b"."
def mark(): return b"("
def uni(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b
def glob(m, n): return b"c" + m.encode() + b"\n" + n.encode() + b"\n"
def int1(i): return b"K" + bytes([i])
def binput(i): return b"q" + bytes([i])
def binget(i): return b"h" + bytes([i])


def tensor(key, numel, shape, stride, offset=0, storage="FloatStorage"):
    """_rebuild_tensor_v2((storage pid), offset, shape, stride, False, OrderedDict())."""
    def tup(xs):
        return mark() + b"".join(struct.pack("<cI", b"J", x) if x >= 0 else b"J" + struct.pack("<i", x) for x in xs) + b"t"
    pid = mark() + uni("storage") + glob("torch", storage) + uni(key) + uni("cpu") + b"J" + struct.pack("<i", numel) + b"t"
    return (glob("torch._utils", "_rebuild_tensor_v2") + mark() + pid + b"Q" + b"J" + struct.pack("<i", offset)
            + tup(shape) + tup(stride) + b"\x89" + glob("collections", "OrderedDict") + b")R" + b"t" + b"R")


def state_dict(entries):
    body = b"".join(uni(n) + t for n, t in entries)
    return proto() + b"}" + binput(0) + mark() + body + b"u" + stop()


GOOD_PKL = state_dict([("w", tensor("0", 6, [2, 3], [3, 1]))])
GOOD_DATA = struct.pack("<6f", 1, 2, 3, 4, 5, 6)


def torch_zip(pkl=GOOD_PKL, records=None, extra=(), method=zipfile.ZIP_STORED):
    records = {"0": GOOD_DATA} if records is None else records
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", b"little")
        for k, v in records.items():
            z.writestr(zipfile.ZipInfo("archive/data/" + k), v, compress_type=method)
        for name, data in extra:
            z.writestr(name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name), data)
    return buf.getvalue()


def payload(m, n, arg="id"):
    """A pickle that would call m.n(arg) if it were unpickled by pickle.load."""
    return proto() + glob(m, n) + mark() + uni(arg) + b"tR" + stop()


def patch_entry_field(data, name, lh_off, cd_off, value):
    """Overwrites a field of `name`'s local header (lh_off) and central header (cd_off)."""
    out = bytearray(data)
    n = name.encode()
    i = out.find(b"PK\x03\x04")
    while i >= 0:
        ln = struct.unpack_from("<H", out, i + 26)[0]
        if bytes(out[i + 30:i + 30 + ln]) == n and lh_off is not None:
            out[i + lh_off:i + lh_off + len(value)] = value
        i = out.find(b"PK\x03\x04", i + 4)
    i = out.find(b"PK\x01\x02")
    while i >= 0:
        ln = struct.unpack_from("<H", out, i + 28)[0]
        if bytes(out[i + 46:i + 46 + ln]) == n and cd_off is not None:
            out[i + cd_off:i + cd_off + len(value)] = value
        i = out.find(b"PK\x01\x02", i + 4)
    return bytes(out)


def torch_files():
    f = {}
    f["ok_minimal.bin"] = torch_zip()
    # P1 classic RCE, P3 indirection gadgets: refused at the GLOBAL, before any REDUCE.
    f["P1_posix_system.bin"] = torch_zip(payload("posix", "system", "touch /tmp/pwned"))
    f["P1_os_system.bin"] = torch_zip(payload("os", "system", "touch /tmp/pwned"))
    f["P1_builtins_eval.bin"] = torch_zip(payload("builtins", "eval", "__import__('os')"))
    f["P1_subprocess_popen.bin"] = torch_zip(payload("subprocess", "Popen", "id"))
    f["P2_numpy_dotted.bin"] = torch_zip(payload("numpy", "prod.os.system"))
    f["P2_torch_dunder.bin"] = torch_zip(payload("torch._utils", "_rebuild_tensor_v2.__globals__"))
    f["P3_importlib_import_module.bin"] = torch_zip(payload("importlib", "import_module", "os"))
    f["P3_operator_attrgetter.bin"] = torch_zip(payload("operator", "attrgetter", "system"))
    f["P3_pickle_loads.bin"] = torch_zip(payload("pickle", "loads", "x"))
    # P4: module and name fed to STACK_GLOBAL from the memo.
    f["P4_stack_global_memo.bin"] = torch_zip(
        proto() + uni("os") + binput(1) + uni("system") + binput(2) + b"0" * 0
        + b"}" + b"0"[:0] + binget(1) + binget(2) + b"\x93" + mark() + uni("id") + b"tR" + stop())
    f["P4_stack_global_builtins.bin"] = torch_zip(
        proto() + uni("builtins") + binput(1) + uni("eval") + binput(2) + binget(1) + binget(2)
        + b"\x93" + mark() + uni("1") + b"tR" + stop())
    # P5: BUILD on a class, NEWOBJ, INST.
    f["P5_build_on_global.bin"] = torch_zip(proto() + glob("collections", "OrderedDict") + b"}" + b"b" + stop())
    f["P5_newobj.bin"] = torch_zip(proto() + glob("collections", "OrderedDict") + b")\x81" + stop())
    f["P5_inst.bin"] = torch_zip(proto() + mark() + b"ios\nsystem\n" + stop())
    # P6: bad persistent ids.
    f["P6_key_traversal.bin"] = torch_zip(state_dict([("w", tensor("../../x", 6, [2, 3], [3, 1]))]))
    f["P6_missing_record.bin"] = torch_zip(state_dict([("w", tensor("7", 6, [2, 3], [3, 1]))]))
    f["P6_pid_not_storage.bin"] = torch_zip(
        proto() + b"}" + mark() + uni("w") + mark() + uni("module") + uni("x") + b"tQ" + b"u" + stop())
    # P7: views past their storage, record smaller than declared, negative stride.
    f["P7_view_past_storage.bin"] = torch_zip(state_dict([("w", tensor("0", 6, [2, 3], [3, 1], offset=4))]))
    f["P7_numel_exceeds_record.bin"] = torch_zip(state_dict([("w", tensor("0", 1000, [2, 3], [3, 1]))]))
    f["P7_negative_stride.bin"] = torch_zip(state_dict([("w", tensor("0", 6, [2, 3], [-3, 1]))]))
    # P8: memo index 0xFFFFFFFF put, then a get of an index never set.
    f["P8_dangling_memo.bin"] = torch_zip(proto() + b"}" + b"r\xff\xff\xff\xff" + b"j\x07\x00\x00\x00" + stop())
    # P9: resource abuse.
    f["P9_binunicode_4gib.bin"] = torch_zip(proto() + b"X\xff\xff\xff\xff" + b"abc" + stop())
    f["P9_frame_lies.bin"] = torch_zip(b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"}" + stop())
    f["P9_nested_lists.bin"] = torch_zip(proto() + b"]" * 200 + b"a" * 199 + stop())
    f["P9_stack_underflow.bin"] = torch_zip(proto() + b"\x86" + stop())
    f["P9_mark_flood.bin"] = torch_zip(proto() + b"(" * 20000 + stop())
    # P10: one 1000-element list fetched from the memo 5000 times.
    f["P10_memo_amplification.bin"] = torch_zip(
        proto() + b"]" + mark() + int1(1) * 1000 + b"e" + binput(0) + b"]" + mark() + binget(0) * 5000 + b"e" + stop())
    # P11: broken streams around a valid payload (nullifAI).
    f["P11_opcode_before_stop.bin"] = torch_zip(GOOD_PKL[:-1] + b"\xff" + stop())
    f["P11_missing_stop.bin"] = torch_zip(GOOD_PKL[:-1])
    f["P11_bytes_after_stop.bin"] = torch_zip(GOOD_PKL + payload("os", "system"))
    # P12: formats that are not a zip state dict.
    f["P12_legacy_magic.bin"] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19." + b"\x00" * 32
    f["P12_torchscript.pt"] = torch_zip(extra=[("archive/constants.pkl", proto() + b")."), ("archive/code/__torch__.py", b"def forward(self): pass\n")])
    tar = bytearray(1024)
    tar[0:8] = b"data.pkl"
    tar[257:263] = b"ustar\x00"
    f["P12_legacy_tar.pt"] = bytes(tar)
    # P13: disguises.
    f["P13_bare_pickle.bin"] = payload("os", "system")
    f["P13_gzip_wrapped.pt"] = gzip.compress(torch_zip(), mtime=0)
    f["P13_7z_wrapped.pt"] = b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24
    # Z1: names escaping the archive.
    for tag, name in [("dotdot", "../../x"), ("abs", "/abs/x"), ("backslash", "archive\\..\\..\\x")]:
        f[f"Z1_slip_{tag}.bin"] = torch_zip(extra=[(name, b"x")])
    # Z2: a symlink entry.
    link = zipfile.ZipInfo("archive/data/1")
    link.create_system = 3
    link.external_attr = (0o120777 << 16)
    f["Z2_symlink.bin"] = torch_zip(extra=[(link, b"/etc/passwd")])
    # Z3: data.pkl twice (zip readers disagree on which wins).
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f["Z3_duplicate_pkl.bin"] = torch_zip(extra=[("archive/data.pkl", payload("os", "system"))])
    # Z4: local header name differs from the central directory.
    good = torch_zip()
    f["Z4_lh_name_mismatch.bin"] = good.replace(b"archive/data.pkl", b"archive/data.pkX", 1)
    # Z5: the central directory entry of byteorder points at data.pkl's local header.
    f["Z5_overlap.bin"] = patch_entry_field(good, "archive/byteorder", None, 42, struct.pack("<I", 0))
    # Z6: a deflated record (a bomb needs compression; torch never compresses).
    f["Z6_deflated_record.bin"] = torch_zip(records={"0": GOOD_DATA * 1}, method=zipfile.ZIP_DEFLATED)
    # Z7: data before the first entry (spanned-archive marker, then garbage).
    f["Z7_prefix_garbage.bin"] = b"PK\x07\x08" + b"\x00" * 60 + good
    # Z8: CRC mismatch in a record; encrypted flag.
    f["Z8_crc_mismatch.bin"] = patch_entry_field(good, "archive/data/0", 14, 16, struct.pack("<I", 0xDEADBEEF))
    f["Z8_encrypted.bin"] = patch_entry_field(good, "archive/data/0", 6, 8, struct.pack("<H", 1))
    return f


# ---------- ONNX (onnx/onnx.proto field numbers) ----------
def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def pfield(num, wt, payload):
    key = varint((num << 3) | wt)
    if wt == 0:
        return key + varint(payload)
    if wt == 2:
        return key + varint(len(payload)) + payload
    raise ValueError(wt)


def onnx_tensor(name, dims, dtype=1, raw=None, floats=None, external=None):
    t = b"".join(pfield(1, 0, d) for d in dims) + pfield(2, 0, dtype) + pfield(8, 2, name.encode())
    if raw is not None:
        t += pfield(9, 2, raw)
    if floats is not None:
        t += pfield(4, 2, struct.pack(f"<{len(floats)}f", *floats))
    if external is not None:
        for k, v in external:
            t += pfield(13, 2, pfield(1, 2, k.encode()) + pfield(2, 2, v.encode()))
        t += pfield(14, 0, 1)
    return t


def onnx_model(tensors, nodes=b""):
    graph = nodes + b"".join(pfield(5, 2, t) for t in tensors)
    return pfield(1, 0, 8) + pfield(7, 2, graph)


def ext(location, offset=None, length=None, extra=()):
    kv = [("location", location)]
    if offset is not None:
        kv.append(("offset", str(offset)))
    if length is not None:
        kv.append(("length", str(length)))
    return kv + list(extra)


def onnx_files():
    d = os.path.join(ROOT, "onnx")
    os.makedirs(d, exist_ok=True)
    f = {}
    f["ok_inline.onnx"] = onnx_model([onnx_tensor("w", [2, 3], raw=GOOD_DATA)])
    f["ok_external.onnx.data"] = GOOD_DATA
    f["ok_external.onnx"] = onnx_model([onnx_tensor("w", [2, 3], external=ext("ok_external.onnx.data", 0, 24))])
    # O1: traversal, absolute, through a symlink (hard links are made by the test: git
    # cannot store them).
    f["O1_dotdot.onnx"] = onnx_model([onnx_tensor("w", [2, 3], external=ext("../../etc/passwd", 0, 24))])
    f["O1_sub_dotdot.onnx"] = onnx_model([onnx_tensor("w", [2, 3], external=ext("subdir/../../x", 0, 24))])
    f["O1_absolute.onnx"] = onnx_model([onnx_tensor("w", [2, 3], external=ext("/etc/passwd", 0, 24))])
    f["O1_symlink.onnx"] = onnx_model([onnx_tensor("w", [2, 3], external=ext("O1_symlink.link.data", 0, 24))])
    # O2: offset + length wraps, runs past the file, offset 2^50.
    f["O2_wraps.onnx"] = onnx_model([onnx_tensor("w", [2, 3], external=ext("ok_external.onnx.data", 2**64 - 8, 24))])
    f["O2_past_end.onnx"] = onnx_model([onnx_tensor("w", [2, 3], external=ext("ok_external.onnx.data", 16, 24))])
    f["O2_offset_2_50.onnx"] = onnx_model([onnx_tensor("w", [2, 3], external=ext("ok_external.onnx.data", 2**50, 24))])
    # O3: payload shorter than the shape.
    f["O3_raw_short.onnx"] = onnx_model([onnx_tensor("w", [1000000], raw=b"\x00" * 4)])
    f["O3_typed_short.onnx"] = onnx_model([onnx_tensor("w", [2, 3], floats=[1, 2, 3])])
    # O4: negative dimension, element count overflow.
    f["O4_negative_dim.onnx"] = onnx_model([onnx_tensor("w", [-1], raw=b"")])
    f["O4_dims_overflow.onnx"] = onnx_model([onnx_tensor("w", [2**40, 2**40, 16], raw=b"\x00" * 4)])
    # O5: a graph whose length claims 3 GiB; a node with attribute subgraphs 1000 deep.
    f["O5_length_lies.onnx"] = pfield(1, 0, 8) + varint((7 << 3) | 2) + varint(3 << 30) + b"\x00" * 16
    nested = b""
    for _ in range(1000):
        nested = pfield(5, 2, pfield(6, 2, nested))  # AttributeProto.g = GraphProto(node = ...)
    f["O5_deep_subgraphs.onnx"] = onnx_model([], nodes=pfield(1, 2, nested))
    # O6: attribute injection through external_data keys.
    f["O6_class_key.onnx"] = onnx_model([onnx_tensor("w", [2, 3], external=ext("ok_external.onnx.data", 0, 24, [("__class__", "os.system")]))])
    f["O6_unknown_key.onnx"] = onnx_model([onnx_tensor("w", [2, 3], external=ext("ok_external.onnx.data", 0, 24, [("basepath", "/")]))])
    write("onnx", f)
    link = os.path.join(d, "O1_symlink.link.data")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink("/etc/passwd", link)


def write(sub, files):
    d = os.path.join(ROOT, sub)
    os.makedirs(d, exist_ok=True)
    for name, data in sorted(files.items()):
        with open(os.path.join(d, name), "wb") as fh:
            fh.write(data)
    print(f"{len(files)} files in {d}", file=sys.stderr)


if __name__ == "__main__":
    write("torch", torch_files())
    onnx_files()
