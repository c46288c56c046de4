#!/usr/bin/env python3
"""kill -9 at scale: acknowledged records survive any number of SIGKILLs.

Usage:
    integration/kill_loop.sh path/to/tiercel [cycles] [--rate N] [--keep]

    cycles   how many start / produce / SIGKILL cycles (default 100; CI passes e.g. 3)
    --rate   records produced per second per cycle (default 2000; keeps the bookkeeping bounded)
    --keep   keep the temp root (data dir and broker.log) even when everything passed

One data dir for all cycles (ROOT/data, cwd ROOT, broker output appended to ROOT/broker.log).
Each cycle:
  * starts the broker (`--listen`, `--metrics-listen`, `--data-dir`, `--log-level info`) and
    measures the restart time: spawn to the first successful ApiVersions v0 answer;
  * (first cycle only) creates topic `killed` with 4 partitions;
  * runs a confluent_kafka Producer (acks=all, enable.idempotence=true) writing records whose
    payload is a unique sequence number, round-robin over the 4 partitions, for a random 1-3 s,
    recording (partition, offset, payload) of every successful delivery report;
  * SIGKILLs the broker while that producer is still producing (the kill happens inside the
    produce loop, with requests in flight; the loop goes on for 0.2 s after it), then purges
    whatever the producer still holds (those were never acknowledged).
After all cycles the broker starts once more and a confluent_kafka Consumer reads the 4
partitions from the beginning to the high watermark. Every acknowledged record must be at
exactly its acknowledged offset with the same payload, and each partition's offsets must be
contiguous from 0. Exits non-zero on any loss, mismatch or gap (or when nothing was ever
acknowledged, which would make the test vacuous).
"""

import argparse
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import Broker, consume_all, create_topic, kafka_quiet  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

TOPIC = "killed"
PARTITIONS = 4


def run_cycle(binary, root, cycle, state, rate):
    b = Broker(binary, root)
    try:
        restart = b.wait_ready(timeout=300)
    except RuntimeError as e:
        b.kill()
        raise RuntimeError(f"cycle {cycle}: {e}")
    if cycle == 0:
        create_topic(b.bootstrap, TOPIC, PARTITIONS)
    acked = state["acked"]
    stats = {"acked": 0, "failed": 0, "conflicts": 0}

    def on_delivery(err, msg):
        if err is not None:
            stats["failed"] += 1
            return
        key = (msg.partition(), msg.offset())
        seq = int(msg.value())
        if key in acked and acked[key] != seq:
            stats["conflicts"] += 1
            state["conflicts"].append(f"cycle {cycle}: p{key[0]} offset {key[1]} acknowledged for "
                                      f"{acked[key]} and again for {seq}")
        acked[key] = seq
        stats["acked"] += 1

    p = Producer(kafka_quiet({"bootstrap.servers": b.bootstrap, "acks": "all",
                              "enable.idempotence": True, "linger.ms": 5,
                              "message.timeout.ms": 30000}))
    run_for = random.uniform(1.0, 3.0)
    t0 = time.monotonic()
    kill_at = t0 + run_for
    stop_at = kill_at + 0.2
    killed = False
    in_flight_at_kill = None
    produced = 0
    died_early = None
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        if not killed and now >= kill_at:
            if b.proc.poll() is not None:
                died_early = b.proc.returncode
            in_flight_at_kill = len(p)
            os.kill(b.pid, signal.SIGKILL)
            killed = True
        # pace: `rate` records a second
        due = int((now - t0) * rate) + 1
        while produced < due:
            seq = state["next_seq"]
            try:
                p.produce(TOPIC, str(seq).encode(), partition=seq % PARTITIONS, on_delivery=on_delivery)
            except BufferError:
                break
            state["next_seq"] += 1
            produced += 1
        p.poll(0.002)
    b.proc.wait()
    b.log.close()
    # acknowledgements that arrived before the kill are already queued: serve them, then drop
    # what the producer still holds (never acknowledged, and no broker left to acknowledge it)
    p.poll(0.1)
    p.purge(in_queue=True, in_flight=True, blocking=True)
    p.flush(10)
    left = len(p)
    del p
    return {"restart": restart, "run_for": run_for, "produced": produced,
            "in_flight_at_kill": in_flight_at_kill, "left": left, "died_early": died_early, **stats}


def verify(binary, root, state):
    b = Broker(binary, root)
    try:
        start = b.wait_ready(timeout=300)
        got = consume_all(b.bootstrap, TOPIC, list(range(PARTITIONS)), timeout=600)
    finally:
        if b.alive():
            exited, secs, rc = b.terminate()
            print(f"final broker: SIGTERM exit {'in' if exited else 'NOT within'} {secs:.2f} s, status {rc}")
        else:
            print(f"final broker: exited by itself with {b.proc.returncode}")
            b.kill()
    return start, got


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("cycles", nargs="?", type=int, default=100)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    binary = os.path.realpath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"not an executable: {binary}")
    root = tempfile.mkdtemp(prefix="kill-loop-")
    print(f"kill loop: {binary}, {args.cycles} cycles, {args.rate} records/s, root {root}", flush=True)
    state = {"acked": {}, "next_seq": 0, "conflicts": []}
    failures = []
    restarts = []
    t_all = time.monotonic()
    for cycle in range(args.cycles):
        try:
            r = run_cycle(binary, root, cycle, state, args.rate)
        except Exception as e:
            failures.append(f"cycle {cycle}: {type(e).__name__}: {e}")
            print(f"cycle {cycle:3d}: FAILED: {e}", flush=True)
            break
        restarts.append(r["restart"])
        if r["died_early"] is not None:
            failures.append(f"cycle {cycle}: the broker had exited by itself ({r['died_early']}) before the kill")
        print(f"cycle {cycle:3d}: restart {r['restart'] * 1000:7.0f} ms, produced {r['produced']:5d} "
              f"for {r['run_for']:.1f} s, acked {r['acked']:5d}, unacked {r['failed']:5d}, "
              f"in flight at kill {r['in_flight_at_kill']}", flush=True)
    acked = state["acked"]
    failures += state["conflicts"]
    start, got = None, {}
    if not failures or len(restarts) == args.cycles:
        try:
            start, got = verify(binary, root, state)
        except Exception as e:
            failures.append(f"verification: {type(e).__name__}: {e}")
    found = 0
    lost = []
    gaps = []
    extra = 0
    for p in range(PARTITIONS):
        g = got.get(p)
        if g is None:
            gaps.append(f"p{p}: not read")
            continue
        if g["errors"]:
            gaps.append(f"p{p}: {len(g['errors'])} consumer errors, first {g['errors'][0]}")
        offs = [o for o, _ in g["records"]]
        if g["low"] != 0:
            gaps.append(f"p{p}: log start {g['low']}, expected 0")
        if offs != list(range(0, g["high"])):
            jumps = [(a, b) for a, b in zip([-1] + offs, offs) if b != a + 1][:3]
            gaps.append(f"p{p}: offsets not contiguous 0..{g['high'] - 1} ({len(offs)} read; first jumps {jumps})")
        log = dict(g["records"])
        found += len(log)
        for (part, off), seq in acked.items():
            if part != p:
                continue
            v = log.get(off)
            if v is None or v != str(seq).encode():
                lost.append(f"p{p} offset {off}: acknowledged {seq}, found {v!r}")
        extra += sum(1 for off in log if (p, off) not in acked)
    elapsed = time.monotonic() - t_all
    print("=" * 80)
    print(f"cycles:               {len(restarts)}/{args.cycles}")
    print(f"acknowledged records: {len(acked)}")
    print(f"records found:        {found} ({extra} written but never acknowledged)")
    print(f"lost or changed:      {len(lost)}")
    if restarts:
        print(f"restart time:         median {statistics.median(restarts) * 1000:.0f} ms, "
              f"max {max(restarts) * 1000:.0f} ms, min {min(restarts) * 1000:.0f} ms")
    if start is not None:
        print(f"final start:          {start * 1000:.0f} ms")
    print(f"elapsed:              {elapsed:.1f} s")
    if not acked:
        failures.append("no record was ever acknowledged: the test proved nothing")
    failures += [f"lost: {x}" for x in lost[:20]] + ([f"... {len(lost) - 20} more lost"] if len(lost) > 20 else [])
    failures += [f"gap: {x}" for x in gaps]
    if failures:
        for f in failures:
            print(f"FAIL {f}")
        print(f"FAIL (root kept: {root})")
        sys.exit(1)
    print("PASS: every acknowledged record is at its offset, offsets contiguous from 0")
    if args.keep:
        print(f"root kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
