"""Builds `llama-gguf-split` (the reference for wharf's split GGUF output) from the llama.cpp sources
vendored in the pinned llama-cpp-python sdist, linked against the libllama/libggml-base that
llama-cpp-python installed in the venv: one file compiled, in seconds, instead of a second build
of llama.cpp.

gguf-split.cpp needs from outside libllama/libggml only the build-info functions of llama.cpp's
`common` library, which it prints for `--version`; they are defined here (`shim/`), and its
`#include "common.h"` finds a header with just the three split key names.

Usage: build_gguf_split.py OUT_BINARY
"""

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import llama_cpp

SDIST = ("https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/"
         "llama_cpp_python-0.3.36.tar.gz")
SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
ROOT = "llama_cpp_python-0.3.36/vendor/llama.cpp/"
WANTED = ("tools/gguf-split/gguf-split.cpp", "include/", "ggml/include/", "common/build-info.h")

# The split keys, as llama.cpp's common.h names them.
COMMON = """#pragma once
const char * const LLM_KV_SPLIT_NO            = "split.no";
const char * const LLM_KV_SPLIT_COUNT         = "split.count";
const char * const LLM_KV_SPLIT_TENSORS_COUNT = "split.tensors.count";
"""

SHIM = """#include <cstdio>
int llama_build_number(void) { return 0; }
const char * llama_commit(void) { return "llama-cpp-python-0.3.36"; }
const char * llama_compiler(void) { return "g++"; }
const char * llama_build_target(void) { return "host"; }
const char * llama_build_info(void) { return "llama-cpp-python-0.3.36"; }
void llama_print_build_info(const char *, FILE *) {}
"""


def main(out):
    out = Path(out)
    lib = Path(llama_cpp.__file__).parent / "lib"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sdist = tmp / "sdist.tar.gz"
        data = urllib.request.urlopen(SDIST, timeout=180).read()
        got = hashlib.sha256(data).hexdigest()
        if got != SHA256:
            sys.exit(f"llama-cpp-python sdist: sha256 {got}, expected {SHA256}")
        sdist.write_bytes(data)
        with tarfile.open(sdist) as t:
            members = [m for m in t.getmembers() if any(m.name.startswith(ROOT + w) for w in WANTED)]
            t.extractall(tmp, members=members, filter="data")
        src = tmp / ROOT
        shim = tmp / "shim"
        shim.mkdir()
        (shim / "common.h").write_text(COMMON)
        (shim / "build_info.cpp").write_text(SHIM)
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["g++", "-std=c++17", "-O2", "-o", str(out),
               f"-I{shim}", f"-I{src / 'common'}", f"-I{src / 'include'}", f"-I{src / 'ggml/include'}",
               str(src / "tools/gguf-split/gguf-split.cpp"), str(shim / "build_info.cpp"),
               f"-L{lib}", "-lllama", "-lggml-base", f"-Wl,-rpath,{lib}"]
        subprocess.run(cmd, check=True)
    print(f"built {out}")


if __name__ == "__main__":
    main(sys.argv[1])
