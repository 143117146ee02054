#!/usr/bin/env python3
"""Writes seed inputs for queue_blk_fuzz: well-formed blk requests (IN, OUT,
FLUSH, GET_ID, direct and indirect), so the fuzzer starts from chains that
reach the io_uring path instead of having to discover the layout.
Usage: make_seeds.py CORPUS_DIR"""
import os
import struct
import sys

SIZE_LOG2 = 2  # queue of 4
SIZE = 1 << SIZE_LOG2
DATA = 0x3000
NEXT, WRITE, INDIRECT = 1, 2, 4


def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def seed(flags, descs, data_bytes):
    table = b"".join(descs).ljust(16 * SIZE, b"\0")
    avail = struct.pack("<HH", 0, 1) + struct.pack("<H", 0) * SIZE + struct.pack("<H", 0)
    return bytes([SIZE_LOG2, flags]) + table + avail + data_bytes


def header(kind, sector):
    return struct.pack("<IIQ", kind, 0, sector)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    hdr, buf, status = DATA, DATA + 0x100, DATA + 0x1100
    seeds = {}
    for name, kind, sector, n, wflag in [("in", 0, 1, 512, WRITE), ("out", 1, 2, 1024, 0), ("getid", 8, 0, 20, WRITE)]:
        d = [desc(hdr, 16, NEXT, 1), desc(buf, n, wflag | NEXT, 2), desc(status, 1, WRITE, 0)]
        seeds[name] = seed(3, d, header(kind, sector))
    seeds["flush"] = seed(1, [desc(hdr, 16, NEXT, 1), desc(status, 1, WRITE, 0)], header(4, 0))
    table = DATA + 0x20
    ind = desc(hdr, 16, NEXT, 1) + desc(buf, 512, WRITE | NEXT, 2) + desc(status, 1, WRITE, 0)
    seeds["indirect"] = seed(3, [desc(table, 48, INDIRECT, 0)], header(0, 3).ljust(0x20, b"\0") + ind)
    for name, data in seeds.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
