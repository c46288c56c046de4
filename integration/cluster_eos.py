#!/usr/bin/env python3
"""Coordinator failover helpers of integration/cluster.sh.

  fill BOOT TOPIC N RATE          N records "in-<i>" round-robin over TOPIC's partitions
                                  (idempotent, acks=all), RATE a second
  ctp BOOT SRC DST GROUP TXN STOP consume-transform-produce (librdkafka transactions): reads
                                  SRC read_committed in GROUP, writes "out-<value>" to DST and
                                  the consumed offsets in one transaction per batch, until STOP
                                  exists; after any failed transaction it rewinds to the
                                  group's committed offsets, so each input is output once
  coordinator NODES group|txn ID  the node id FindCoordinator names (from the first node that
                                  answers)
  committed BOOT TOPIC OUT STOP GROUP...
                                  samples the groups' committed offsets every 300 ms; writes
                                  "REGRESSED ..." to OUT when one goes down (a lost commit)
                                  and the last sample as "final group partition offset"
  settled BOOT TOPIC GROUP          waits (up to 120 s) until GROUP's committed offsets are at
                                  TOPIC's end
  reassign BOOT TOPIC NODE         kafka-python's admin: every partition of TOPIC reassigned to
                                  NODE, listed until done, then led by NODE; a preferred
                                  election is not needed; cancelling then is refused
  check BOOT SRC DST N OUT GROUP...
                                  every "out-in-<i>" in DST (read_committed) for i < N as many
                                  times as "in-<i>" is in SRC (one output per input record),
                                  nothing else; each group's final committed offsets at SRC's
                                  end; no REGRESSED line in OUT
"""
import os
import struct
import sys
import time

from cluster_chaos import call


def fill(boot, topic, n, rate):
    from confluent_kafka import Producer

    # "debug": the idempotence state machine's log (why it re-sent or bumped its epoch)
    p = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "linger.ms": 20,
                  "message.timeout.ms": 120000, "topic.metadata.refresh.interval.ms": 1000,
                  "debug": "eos"})
    parts = len(p.list_topics(topic, timeout=30).topics[topic].partitions)
    failed = []
    started, rate = time.time(), float(rate)
    for i in range(int(n)):
        ahead = i / rate - (time.time() - started)
        if ahead > 0:
            p.poll(ahead)
        while True:
            try:
                p.produce(topic, value=f"in-{i}".encode(), partition=i % parts,
                          on_delivery=lambda e, m: e and failed.append(e))
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(120)
    if failed or left:
        sys.exit(f"fill: {len(failed)} failed, {left} unflushed")
    print("fill: done", file=sys.stderr)


def ctp(boot, src, dst, group, txn_id, stop):
    from confluent_kafka import Consumer, KafkaException, Producer

    def producer():
        p = Producer({"bootstrap.servers": boot, "transactional.id": txn_id,
                      "transaction.timeout.ms": 60000, "topic.metadata.refresh.interval.ms": 1000})
        while True:
            try:
                p.init_transactions(60)
                return p
            except KafkaException as e:
                print(f"init_transactions: {e}", file=sys.stderr)
                time.sleep(1)

    def consumer():
        c = Consumer({"bootstrap.servers": boot, "group.id": group, "enable.auto.commit": False,
                      "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                      "topic.metadata.refresh.interval.ms": 1000})
        c.subscribe([src])
        return c

    p, c = producer(), consumer()
    committed = failed = 0
    while not os.path.exists(stop):
        msgs = [m for m in c.consume(500, 0.5) if m.error() is None]
        if not msgs:
            continue
        try:
            p.begin_transaction()
            for m in msgs:
                while True:
                    try:
                        p.produce(dst, value=b"out-" + m.value(), partition=m.partition())
                        break
                    except BufferError:
                        p.poll(0.05)
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 60)
            for attempt in range(10):
                try:
                    p.commit_transaction(60)
                    break
                except KafkaException as e:
                    if not e.args[0].retriable() or attempt == 9:
                        raise
                    time.sleep(0.5)
            committed += 1
        except KafkaException as e:
            failed += 1
            err = e.args[0]
            print(f"transaction failed: {err}", file=sys.stderr)
            if err.txn_requires_abort():
                try:
                    p.abort_transaction(60)
                except KafkaException as e2:
                    print(f"abort: {e2}", file=sys.stderr)
                    p = producer()
            else:
                p = producer()
            # whatever happened, the committed offsets say where the output stands
            c.close()
            c = consumer()
    c.close()
    print(f"ctp: {committed} transactions committed, {failed} failed", file=sys.stderr)


def find_coordinator(addr, kind, key):
    """FindCoordinator v1: the node id, or None."""
    client, k = b"tiercel-eos", key.encode()
    body = struct.pack(">hhih", 10, 1, 1, len(client)) + client
    body += struct.pack(">h", len(k)) + k + struct.pack(">b", 1 if kind == "txn" else 0)
    r = call(addr, body, 2)
    if r is None:
        return None
    r.i32(); r.i32()  # correlation id, throttle
    err = r.i16()
    r.string()
    node = r.i32()
    return node if err == 0 else None


def coordinator(nodes, kind, key):
    deadline = time.time() + 60
    while time.time() < deadline:
        for addr in nodes.split(","):
            n = find_coordinator(addr, kind, key)
            if n is not None:
                print(n)
                return 0
        time.sleep(0.3)
    return 1


def committed_offsets(boot, topic, group):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": boot, "group.id": group, "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        got = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def end_offsets(boot, topic):
    """Each partition's high watermark, retried while leaderships move."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": boot, "group.id": "eos-ends",
                  "topic.metadata.refresh.interval.ms": 1000})
    try:
        parts = c.list_topics(topic, timeout=30).topics[topic].partitions
        ends, deadline = {}, time.time() + 60
        for p in parts:
            while True:
                try:
                    ends[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    break
                except KafkaException:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.5)
        return ends
    finally:
        c.close()


def settled(boot, topic, group):
    ends = end_offsets(boot, topic)
    deadline, now = time.time() + 120, None
    while time.time() < deadline:
        try:
            now = committed_offsets(boot, topic, group)
            if now == ends:
                return 0
        except Exception as e:
            print(f"settled({group}): {e}", file=sys.stderr)
        time.sleep(0.5)
    print(f"PROBLEM: group {group} did not commit up to the end of {topic} in 120 s: "
          f"committed {now}, ends {ends}")
    return 1


def committed(boot, topic, out_path, stop, *groups):
    best = {}
    out = open(out_path, "a", buffering=1)
    while True:
        last = os.path.exists(stop)
        for g in groups:
            try:
                now = committed_offsets(boot, topic, g)
            except Exception as e:  # a coordinator moving: the next sample sees it
                print(f"committed({g}): {e}", file=sys.stderr)
                continue
            for p, off in now.items():
                prev = best.get((g, p), -1001)
                if off < prev:
                    out.write(f"REGRESSED {g} {topic}-{p} {prev} -> {off}\n")
                best[(g, p)] = max(prev, off)
                if last:
                    out.write(f"final {g} {p} {off}\n")
        if last:
            return
        time.sleep(0.3)


def reassign(boot, topic, node):
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.errors import ElectionNotNeededError, NoReassignmentInProgressError

    node = int(node)
    a = KafkaAdminClient(bootstrap_servers=boot.split(","))
    parts = [p["partition_index"] for p in a.describe_topics([topic])[0]["partitions"]]
    tps = [TopicPartition(topic, p) for p in parts]
    errors = a.alter_partition_reassignments({tp: [node] for tp in tps})
    problems = [f"{tp}: {e}" for tp, e in errors.items() if e is not None]
    deadline, moved = time.time() + 60, False
    while not problems and time.time() < deadline and not moved:
        time.sleep(0.3)
        listed = a.list_partition_reassignments()
        leaders = {p["partition_index"]: p["leader_id"]
                   for p in a.describe_topics([topic])[0]["partitions"]}
        moved = not listed and all(leaders.get(p) == node for p in parts)
    if not moved:
        problems.append(f"{topic} did not move to node {node}")
    resp = a.elect_leaders(0, {topic: parts}, raise_errors=False)
    for r in resp.replica_election_results:
        for pr in r.partition_result:
            if pr.error_code != ElectionNotNeededError.errno:
                problems.append(f"preferred election of {topic}-{pr.partition_id}: error {pr.error_code}")
    cancelled = a.alter_partition_reassignments({tps[0]: None})
    if cancelled.get(tps[0]) is not NoReassignmentInProgressError:
        problems.append(f"cancelling a finished reassignment: {cancelled}")
    a.close()
    for pr in problems:
        print("PROBLEM: " + pr)
    print(f"kafka-python admin: {len(parts)} partitions of {topic} reassigned to node {node}: "
          + ("PASS" if not problems else "FAIL"))
    return 1 if problems else 0


def read_values(boot, topic, parts):
    """Every value of TOPIC (read_committed), counted, read until 5 s pass without one."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": boot, "group.id": "eos-check", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    seen, deadline, quiet = {}, time.time() + 120, time.time()
    while time.time() < deadline and time.time() - quiet < 5:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        quiet = time.time()
        v = m.value().decode()
        seen[v] = seen.get(v, 0) + 1
    c.close()
    return seen


def check(boot, src, dst, n, out_path, *groups):
    from confluent_kafka import Consumer

    problems = []
    c = Consumer({"bootstrap.servers": boot, "group.id": "eos-check", "enable.auto.commit": False})
    meta = c.list_topics(timeout=30).topics
    c.close()
    ends = {(src, p): end for p, end in end_offsets(boot, src).items()}
    # exactly-once is about records: each input record (offset) gives one output. The input is
    # written by an idempotent producer, which can itself write a record twice across a leader
    # failover (librdkafka bumps its epoch locally and resends possibly persisted batches under
    # new sequences, confluentinc/librdkafka#4953); that is reported apart, not as a
    # consume-transform-produce failure.
    inputs = read_values(boot, src, meta[src].partitions)
    seen = read_values(boot, dst, meta[dst].partitions)
    expected = {f"out-{v}": k for v, k in inputs.items()}
    want = {f"out-in-{i}" for i in range(int(n))}
    twice = [v for v, k in seen.items() if k > expected.get(v, 0) and k > 1]
    missing = want - seen.keys()
    extra = seen.keys() - want
    short = [v for v, k in expected.items() if v in want and 0 < seen.get(v, 0) < k]
    if twice:
        problems.append(f"{len(twice)} outputs more often than their input, e.g. {sorted(twice)[:3]}")
    if missing:
        problems.append(f"{len(missing)} inputs never output, e.g. {sorted(missing)[:3]}")
    if short:
        problems.append(f"{len(short)} inputs output fewer times than written, e.g. {sorted(short)[:3]}")
    if extra:
        problems.append(f"{len(extra)} unexpected outputs, e.g. {sorted(extra)[:3]}")
    dup_in = sorted(v for v, k in inputs.items() if k > 1)
    if dup_in:
        print(f"note: the idempotent input producer wrote {len(dup_in)} inputs twice to {src} "
              f"(e.g. {dup_in[:3]}); each copy was output once")
    lines = open(out_path).read().splitlines() if os.path.exists(out_path) else []
    problems += [line for line in lines if line.startswith("REGRESSED")]
    final = {(g, int(p)): int(o) for _, g, p, o in
             (line.split() for line in lines if line.startswith("final "))}
    for g in groups:
        for p in meta[src].partitions:
            got, end = final.get((g, p)), ends[(src, p)]
            if got != end:
                problems.append(f"group {g}: committed offset of {src}-{p} is {got}, its end is {end}")
    print(f"exactly-once: {sum(seen.values())} outputs of {sum(inputs.values())} input records "
          f"({len(seen)} distinct of {n}), {len(twice)} doubled, {len(missing)} missing; "
          f"committed-offset samples regressed "
          f"{sum(1 for line in lines if line.startswith('REGRESSED'))} times")
    for pr in problems:
        print("PROBLEM: " + pr)
    return 1 if problems else 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "fill":
        fill(*args)
    elif cmd == "ctp":
        ctp(*args)
    elif cmd == "coordinator":
        sys.exit(coordinator(*args))
    elif cmd == "committed":
        committed(*args)
    elif cmd == "settled":
        sys.exit(settled(*args))
    elif cmd == "reassign":
        sys.exit(reassign(*args))
    elif cmd == "check":
        sys.exit(check(*args))
    else:
        sys.exit(f"unknown command {cmd}")
