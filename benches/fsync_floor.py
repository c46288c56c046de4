#!/usr/bin/env python3
"""The disk's floor for acks=all latency: what a write plus fdatasync takes at the latency
phase's rate, with nothing else in the way.

One thread per partition appends records of SIZE bytes (plus a batch header's 61) to a file of
its own and syncs each one, together RATE records/s for SECS seconds: what a broker that synced
every record of every partition on its own would ask of the disk. Prints the p50, p99 and p99.9
of write+fdatasync in milliseconds.

Usage: fsync_floor.py DIR PARTITIONS RATE SIZE SECS
"""
import os
import sys
import threading
import time

d, parts, rate, size, secs = sys.argv[1], *map(int, sys.argv[2:6])
os.makedirs(d, exist_ok=True)
record = b"x" * (size + 61)
lats = []
lock = threading.Lock()


def partition(i):
    fd = os.open(os.path.join(d, f"floor-{i}"), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    every = parts / rate
    start = time.perf_counter() + i / rate  # the partitions' turns spread over the interval
    mine = []
    for k in range(int(secs * rate / parts)):
        wait = start + k * every - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        t = time.perf_counter()
        os.write(fd, record)
        os.fdatasync(fd)
        mine.append(time.perf_counter() - t)
    os.close(fd)
    with lock:
        lats.extend(mine)


threads = [threading.Thread(target=partition, args=(i,)) for i in range(parts)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lats.sort()
pct = lambda q: lats[min(len(lats) - 1, int(q * len(lats)))] * 1000
print(f"{pct(0.5):.3f} {pct(0.99):.3f} {pct(0.999):.3f}")
