#!/usr/bin/env python3
"""What a segment file's layout costs each fdatasync: one thread writes SIZE bytes to each of
FILES files in turn and syncs it after each write, as fast as the disk allows, for SECS seconds
per layout; the layouts alternate, REPEAT rounds.

Layouts:
  append    every write extends the file (new blocks and a new length on every sync)
  reserved  blocks reserved 1 MiB ahead with fallocate(FALLOC_FL_KEEP_SIZE), as the broker does:
            no block allocation on the sync path, but the length still changes and the
            reserved extents are converted to written ones
  zeroed    the file written with zeros and synced beforehand: a write changes neither the
            blocks nor the length, so the sync writes data only (the log's end would then have
            to live elsewhere than in the file's length)

Prints, per layout, the medians over the rounds of syncs/s, CPU microseconds per sync (user +
system of this process), voluntary context switches per sync (each one a wait for the disk),
and the p50/p99 of write+fdatasync in milliseconds.

Usage: sync_layout.py DIR [SIZE=4096] [SECS=3] [FILES=4] [REPEAT=3]
"""
import ctypes
import os
import resource
import statistics
import sys
import time

d = sys.argv[1]
defaults = [4096, 3, 4, 3]
size, secs, files, repeat = (int(sys.argv[2 + i]) if len(sys.argv) > 2 + i else v for i, v in enumerate(defaults))
libc = ctypes.CDLL(None, use_errno=True)
FALLOC_FL_KEEP_SIZE = 1
STEP = 1 << 20
os.makedirs(d, exist_ok=True)
record = os.urandom(size)


def fallocate(fd, start, length):
    if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, ctypes.c_long(start), ctypes.c_long(length)) != 0:
        raise OSError(ctypes.get_errno(), "fallocate")


def run(layout):
    # enough room for what the disk could take in SECS at 1 GB/s, capped at 2 GiB per file
    room = min(2 << 30, int(secs * 1e9 / files))
    fds, ends, reserved = [], [0] * files, [0] * files
    for i in range(files):
        path = os.path.join(d, f"sync-layout-{i}")
        if os.path.exists(path):
            os.remove(path)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        if layout == "zeroed":
            zeros = bytes(STEP)
            for _ in range(room // STEP):
                os.write(fd, zeros)
            os.fsync(fd)
        fds.append(fd)
    lats, n = [], 0
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    while time.perf_counter() - start < secs and ends[n % files] + size <= room:
        i = n % files
        t = time.perf_counter()
        if layout == "reserved" and ends[i] + size > reserved[i]:
            fallocate(fds[i], max(reserved[i], ends[i]), ends[i] + size + STEP - max(reserved[i], ends[i]))
            reserved[i] = ends[i] + size + STEP
        os.pwrite(fds[i], record, ends[i])
        ends[i] += size
        os.fdatasync(fds[i])
        lats.append(time.perf_counter() - t)
        n += 1
    elapsed = time.perf_counter() - start
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    for i, fd in enumerate(fds):
        os.close(fd)
        os.remove(os.path.join(d, f"sync-layout-{i}"))
    lats.sort()
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return (n / elapsed, cpu / n * 1e6, (r1.ru_nvcsw - r0.ru_nvcsw) / n,
            lats[len(lats) // 2] * 1e3, lats[int(len(lats) * 0.99)] * 1e3)


layouts = ["append", "reserved", "zeroed"]
results = {l: [] for l in layouts}
for r in range(repeat):
    for l in layouts[r % 3:] + layouts[:r % 3]:
        results[l].append(run(l))
        print(f"round {r + 1} {l}: " + " ".join(f"{x:.3f}" for x in results[l][-1]), file=sys.stderr)
print(f"{size} B writes, {files} files, {secs} s each, medians of {repeat}")
print("| layout | syncs/s | CPU µs per sync | waits per sync | p50 ms | p99 ms |")
print("|---|---|---|---|---|---|")
for l in layouts:
    m = [statistics.median(c) for c in zip(*results[l])]
    print(f"| {l} | {m[0]:,.0f} | {m[1]:.0f} | {m[2]:.2f} | {m[3]:.3f} | {m[4]:.3f} |")
