"""The I/O any streaming quantizer must do, with no compute: section 4's second baseline.

    io_floor.py OUT_FILE OUT_BYTES SRC...
    io_floor.py --read-only SRC...

Reads every SRC in order, 8 MiB at a time on a reader thread (with O_DIRECT into reused aligned
buffers where the file system allows, as wharf reads the tensors it decodes; through the page
cache otherwise), and writes the bytes it read to OUT_FILE until
OUT_BYTES are written (wharf's output size for the same input), then fsyncs it. The caller
deletes it, untimed, as it deletes wharf's output. Like wharf, it writes around the page cache
(O_DIRECT, 8 MiB aligned stages, the unaligned tail through a plain descriptor) where the file
system allows, and otherwise through the cache, starting writeback every 32 MiB
(sync_file_range on Linux) so the final fsync has little left to wait for. So it reads what
wharf reads and writes as much as wharf writes, durably, interleaved the way a streaming tool
interleaves them. `cat SRC > /dev/null` only reads: on a disk whose reads and writes share one
budget, no tool that writes its output can reach cat's time.
"""

import ctypes
import mmap
import os
import sys
import threading
from queue import Queue

CHUNK = 8 << 20
BUFFERS = 4
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


def open_src(src):
    """(fd, direct): the file opened for O_DIRECT reads where the platform has them."""
    if hasattr(os, "O_DIRECT"):
        try:
            return os.open(src, os.O_RDONLY | os.O_DIRECT), True
        except OSError:
            pass
    return os.open(src, os.O_RDONLY), False


def chunks(srcs, free, full):
    """The reader thread: fills buffers from `free` with every SRC's bytes in order, hands them
    on through `full`, then None. The GIL is released while a read waits for the disk, so
    reading overlaps the writes; buffers are reused, so no fresh pages are touched per chunk."""
    for src in srcs:
        fd, direct = open_src(src)
        at = 0
        try:
            while True:
                buf = free.get()
                try:
                    n = os.preadv(fd, [buf], at)
                except OSError:
                    if not direct:
                        raise
                    os.close(fd)  # the file system will not read directly: use the cache
                    fd, direct = os.open(src, os.O_RDONLY), False
                    n = os.preadv(fd, [buf], at)
                if not n:
                    free.put(buf)
                    break
                at += n
                full.put((buf, n))
        finally:
            os.close(fd)
    full.put(None)


class Output:
    """OUT_FILE written in order: whole aligned stages directly where possible, as wharf does."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            self.direct = os.open(path, os.O_WRONLY | os.O_DIRECT) if hasattr(os, "O_DIRECT") else None
        except OSError:
            self.direct = None
        self.stage = mmap.mmap(-1, CHUNK)  # page aligned
        self.filled = self.at = self.kicked = 0
        self.start_writeback = writeback_starter()

    def write(self, data):
        data = memoryview(data)
        while len(data):
            take = min(CHUNK - self.filled, len(data))
            self.stage[self.filled : self.filled + take] = data[:take]
            self.filled += take
            data = data[take:]
            if self.filled == CHUNK:
                self._flush_stage()

    def _flush_stage(self):
        if self.direct is not None:
            try:
                os.pwrite(self.direct, self.stage, self.at)
            except OSError:  # the file system will not do direct I/O: go through the cache
                os.close(self.direct)
                self.direct = None
        if self.direct is None:
            os.pwrite(self.fd, self.stage, self.at)
            if self.at + CHUNK - self.kicked >= WRITEBACK_EVERY:
                self.start_writeback(self.fd)
                self.kicked = self.at + CHUNK
        self.at += CHUNK
        self.filled = 0

    def close(self):
        os.pwrite(self.fd, self.stage[: self.filled], self.at)
        os.fsync(self.fd)
        for fd in (self.fd, self.direct):
            if fd is not None:
                os.close(fd)


def main():
    free, full = Queue(), Queue()
    for _ in range(BUFFERS):
        free.put(mmap.mmap(-1, CHUNK))  # page aligned, as O_DIRECT needs
    if sys.argv[1] == "--read-only":
        threading.Thread(target=chunks, args=(sys.argv[2:], free, full), daemon=True).start()
        while (item := full.get()) is not None:
            free.put(item[0])
        return
    out, want, srcs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    reader = threading.Thread(target=chunks, args=(srcs, free, full), daemon=True)
    reader.start()
    o = Output(out)
    written = 0
    while (item := full.get()) is not None:
        buf, n = item
        if written < want:
            take = min(n, want - written)
            o.write(memoryview(buf)[:take])
            written += take
        free.put(buf)
    zeros = bytes(CHUNK)
    while written < want:  # an output larger than its source: zeros for the rest
        take = min(CHUNK, want - written)
        o.write(zeros[:take])
        written += take
    o.close()
    reader.join()


if __name__ == "__main__":
    main()
