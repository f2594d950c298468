"""The I/O any streaming quantizer must do, with no compute: section 4's second baseline.

    io_floor.py OUT_FILE OUT_BYTES SRC...

Reads every SRC in order, 8 MiB at a time, and writes the bytes it read to OUT_FILE until
OUT_BYTES are written (wharf's output size for the same input), then fsyncs and deletes it.
Like wharf, it starts writeback every 32 MiB (sync_file_range on Linux), so the final fsync has
little left to wait for. So it reads what wharf reads and writes as much as wharf writes, durably, interleaved the way
a streaming tool interleaves them. `cat SRC > /dev/null` only reads: on a disk whose reads and
writes share one budget, no tool that writes its output can reach cat's time.
"""

import ctypes
import os
import sys

CHUNK = 8 << 20
WRITEBACK_EVERY = 32 << 20
SYNC_FILE_RANGE_WRITE = 2


def writeback_starter():
    """sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) where libc has it, else nothing."""
    try:
        f = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return lambda fd: None
    f.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return lambda fd: f(fd, 0, 0, SYNC_FILE_RANGE_WRITE)


def main():
    out, want, srcs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    start_writeback = writeback_starter()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    written = kicked = 0
    try:
        for src in srcs:
            with open(src, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    take = min(n, want - written)
                    if take > 0:
                        written += os.write(fd, view[:take])
                    if written - kicked >= WRITEBACK_EVERY:
                        start_writeback(fd)
                        kicked = written
        while written < want:  # an output larger than its source: write the last chunk again
            written += os.write(fd, view[: min(CHUNK, want - written)])
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(out)


if __name__ == "__main__":
    main()
