#!/usr/bin/env python3
"""Helpers of integration/cluster.sh (the cluster chaos run).

  produce BOOT TOPIC ACKS STOP      idempotent acks=all producer (librdkafka through
                                    confluent-kafka): writes unique values round-robin over the
                                    topic's partitions until STOP exists; every acknowledged
                                    record goes to ACKS as "time partition offset value"
  epochs NODES TOPIC OUT STOP       asks every node (host:port,...) for Metadata v7 every 200 ms
                                    and writes to OUT every answer in which a partition's leader
                                    epoch is lower than one seen before ("DECREASE ...")
  leaders NODES TOPIC               "partition leader" lines from the first node that answers
  check BOOT TOPIC ACKS EVENTS CONSUMED [RACK]
                                    reads every partition from the start (as a consumer in
                                    RACK, client.rack, when given) and checks: each
                                    acknowledged record is at its offset, no value twice,
                                    offsets without gaps, the consumer group saw every
                                    acknowledged value; reports how long produce took to
                                    resume after each kill (EVENTS: "time kill|pause node
                                    partitions...")
"""
import os
import socket
import struct
import sys
import time


def produce(boot, topic, acks_path, stop):
    from confluent_kafka import Producer

    p = Producer({
        "bootstrap.servers": boot,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 120000,
        "topic.metadata.refresh.interval.ms": 1000,
        # the idempotence state machine's log: why the client drained, re-sent or bumped its epoch
        "debug": os.environ.get("CHAOS_PRODUCER_DEBUG", "eos"),
    })
    parts = len(p.list_topics(topic, timeout=30).topics[topic].partitions)
    out = open(acks_path, "a", buffering=1)
    failed = [0]

    def done(err, msg):
        if err is not None:
            failed[0] += 1
            print(f"delivery failed: {err}", file=sys.stderr)
        else:
            out.write(f"{time.time():.3f} {msg.partition()} {msg.offset()} {msg.value().decode()}\n")

    n = 0
    while not os.path.exists(stop):
        for _ in range(20):
            try:
                p.produce(topic, value=f"v{n:09d}".encode(), partition=n % parts, on_delivery=done)
                n += 1
            except BufferError:
                p.poll(0.05)
        p.poll(0.01)
        time.sleep(0.005)
    left = p.flush(120)
    print(f"producer: {n} sent, {failed[0]} failed, {left} unflushed", file=sys.stderr)


def metadata_v7(addr, topic):
    """(partition -> (leader, epoch)) from one node, or None."""
    host, port = addr.rsplit(":", 1)
    client = b"tiercel-chaos"
    name = topic.encode()
    body = struct.pack(">hhih", 3, 7, 1, len(client)) + client
    body += struct.pack(">ih", 1, len(name)) + name + b"\x00"
    r = call(addr, body, 2)
    if r is None:
        return None
    r.i32()  # correlation id
    r.i32()  # throttle
    for _ in range(r.i32()):  # brokers
        r.i32(); r.string(); r.i32(); r.string()
    r.string()  # cluster id
    r.i32()  # controller
    out = {}
    for _ in range(r.i32()):
        err = r.i16(); r.string(); r.i8()
        for _ in range(r.i32()):
            perr, index, leader, epoch = r.i16(), r.i32(), r.i32(), r.i32()
            for _ in range(3):
                for _ in range(r.i32()):
                    r.i32()
            if err == 0 and perr == 0:
                out[index] = (leader, epoch)
    return out


def producer_epochs(nodes, topic, partition):
    """{offset: producer epoch} of every record of one partition, from the record-batch headers
    (raw Fetch v4 to the partition's leader), up to its high watermark."""
    out, offset, hw = {}, 0, None
    deadline = time.time() + 120
    while (hw is None or offset < hw) and time.time() < deadline:
        leaders = None
        for addr in nodes.split(","):
            leaders = metadata_v7(addr, topic)
            if leaders:
                break
        leader = (leaders or {}).get(partition, (None,))[0]
        addr = next((a for a in nodes.split(",") if leader is not None and metadata_id(a) == leader), None)
        if addr is None:
            time.sleep(0.5)
            continue
        client, name = b"tiercel-chaos", topic.encode()
        body = struct.pack(">hhih", 1, 4, 1, len(client)) + client
        body += struct.pack(">iiiib", -1, 100, 1, 8 << 20, 0)
        body += struct.pack(">ih", 1, len(name)) + name
        body += struct.pack(">iiqi", 1, partition, offset, 8 << 20)
        r = call(addr, body, 10)
        if r is None:
            time.sleep(0.5)
            continue
        r.i32(); r.i32()  # correlation id, throttle
        r.i32(); r.string(); r.i32()  # one topic, one partition
        r.i32()
        err, hw = r.i16(), r.take(">q")
        r.take(">q")  # last stable offset
        n = r.i32()
        for _ in range(max(n, 0)):
            r.take(">q"); r.take(">q")
        size = r.i32()
        if err != 0:
            time.sleep(0.5)
            continue
        end, at = r.at + max(size, 0), r.at
        while at + 61 <= end:
            base, length = struct.unpack_from(">qi", r.b, at)
            if at + 12 + length > end:
                break
            last_delta = struct.unpack_from(">i", r.b, at + 23)[0]
            epoch = struct.unpack_from(">h", r.b, at + 51)[0]
            for o in range(base, base + last_delta + 1):
                out[o] = epoch
            offset = base + last_delta + 1
            at += 12 + length
    return out


_node_ids = {}


def metadata_id(addr):
    """The node id a node at `addr` has (from its own Metadata answer), cached."""
    if addr not in _node_ids:
        client = b"tiercel-chaos"
        body = struct.pack(">hhih", 3, 7, 1, len(client)) + client + struct.pack(">ib", 0, 0)
        r = call(addr, body, 2)
        if r is None:
            return None
        r.i32(); r.i32()
        for _ in range(r.i32()):
            nid, h, p, _rack = r.i32(), r.string(), r.i32(), r.string()
            if f"{h}:{p}" == addr:
                _node_ids[addr] = nid
    return _node_ids.get(addr)


def call(addr, body, timeout):
    """Sends one request frame to `addr` and returns a Reader over the response (None when the
    node does not answer)."""
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", recv(s, 4))[0]
            return Reader(recv(s, size))
    except OSError:
        return None


def recv(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise OSError("closed")
        b += chunk
    return b


class Reader:
    def __init__(self, b):
        self.b, self.at = b, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.at)[0]
        self.at += struct.calcsize(fmt)
        return v

    def i8(self): return self.take(">b")
    def i16(self): return self.take(">h")
    def i32(self): return self.take(">i")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        v = self.b[self.at:self.at + n]
        self.at += n
        return v.decode()


def epochs(nodes, topic, out_path, stop):
    seen = {}
    answers = 0
    with open(out_path, "a", buffering=1) as out:
        while not os.path.exists(stop):
            for addr in nodes.split(","):
                m = metadata_v7(addr, topic)
                if m is None:
                    continue
                answers += 1
                for p, (leader, epoch) in m.items():
                    if epoch < seen.get(p, -1):
                        out.write(f"DECREASE partition {p}: epoch {epoch} from {addr} after {seen[p]}\n")
                    seen[p] = max(seen.get(p, -1), epoch)
            time.sleep(0.2)
        out.write(f"answers {answers} final epochs {sorted(seen.items())}\n")


def check(boot, topic, acks_path, events_path, consumed_path, rack=""):
    from confluent_kafka import Consumer, TopicPartition

    acked = {}
    unplaced = []  # acknowledged without an offset (librdkafka does that for some retries)
    ack_times = {}
    for line in open(acks_path):
        t, p, o, v = line.split()
        if o == "None":
            unplaced.append(v)
        else:
            acked[(int(p), int(o))] = v
        ack_times.setdefault(int(p), []).append(float(t))
    c = Consumer({"bootstrap.servers": boot, "group.id": "chaos-check", "enable.auto.commit": False,
                  "enable.partition.eof": True, "topic.metadata.refresh.interval.ms": 1000,
                  "client.rack": rack})
    parts = len(c.list_topics(topic, timeout=30).topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in range(parts)])
    log = {}
    eof = set()
    deadline = time.time() + 300
    while len(eof) < parts and time.time() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # partition EOF
                eof.add(m.partition())
            continue
        log[(m.partition(), m.offset())] = m.value().decode()
    c.close()
    problems = []
    if len(eof) < parts:
        problems.append(f"read only {len(eof)} of {parts} partitions to their end")
    lost = [(k, v) for k, v in acked.items() if log.get(k) != v]
    if lost:
        problems.append(f"{len(lost)} acknowledged records not at their offsets, e.g. {lost[:5]}")
    values = {}
    for k, v in log.items():
        values.setdefault(v, []).append(k)
    dups = [(v, sorted(ks)) for v, ks in values.items() if len(ks) > 1]
    # a value twice under one producer epoch is a broker that failed to deduplicate a retry; a
    # copy under a later epoch is the client re-sending after it bumped its epoch (librdkafka
    # renumbers batches that may already be persisted; idempotence holds within an epoch)
    epochs = {p: producer_epochs(boot, topic, p) for p in {k[0] for _, ks in dups for k in ks}}
    same = [(v, ks) for v, ks in dups
            if len({epochs[k[0]].get(k[1]) for k in ks}) < len(ks) or None in {epochs[k[0]].get(k[1]) for k in ks}]
    resent = [(v, [(k, epochs[k[0]].get(k[1])) for k in ks]) for v, ks in dups if (v, ks) not in same]
    if same:
        problems.append(f"{len(same)} values written twice under one producer epoch, e.g. {same[:5]}")
    if resent:
        print(f"note: {len(resent)} values written again under a later producer epoch (the client "
              f"re-sent them after bumping its epoch), e.g. {resent[:3]}")
    missing = [v for v in unplaced if v not in values]
    if missing:
        problems.append(f"{len(missing)} records acknowledged without an offset are not in the log, e.g. {missing[:5]}")
    for p in range(parts):
        offs = sorted(o for (q, o) in log if q == p)
        if offs and offs != list(range(offs[0], offs[0] + len(offs))):
            problems.append(f"partition {p}: offsets with gaps")
    consumed = set(open(consumed_path).read().split())
    missed = [v for v in list(acked.values()) + unplaced if v not in consumed]
    if missed:
        problems.append(f"the consumer group never received {len(missed)} acknowledged values, e.g. {missed[:5]}")
    # produce resumption after each kill: first ack on each of the victim's partitions
    resumes = []
    for line in open(events_path):
        f = line.split()
        t, kind, node, victims = float(f[0]), f[1], f[2], [int(x) for x in f[3:]]
        if kind != "kill" or not victims:
            continue
        waits = []
        for p in victims:
            after = [a for a in ack_times.get(p, []) if a > t]
            waits.append(min(after) - t if after else float("inf"))
        resumes.append(max(waits))
    print(f"records acknowledged: {len(acked) + len(unplaced)} ({len(unplaced)} without an offset), in the log: {len(log)}, consumed by the group (distinct): {len(consumed)}")
    if resumes:
        fin = sorted(r for r in resumes if r != float("inf"))
        print(f"produce resumed after each kill (s): " + " ".join(f"{r:.1f}" for r in resumes)
              + (f"; median {fin[len(fin)//2]:.1f}, max {fin[-1]:.1f}" if fin else ""))
    for pr in problems:
        print("PROBLEM: " + pr)
    return 1 if problems else 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "produce":
        produce(*args)
    elif cmd == "epochs":
        epochs(*args)
    elif cmd == "leaders":
        for addr in args[0].split(","):
            m = metadata_v7(addr, args[1])
            if m:
                for p, (leader, _) in sorted(m.items()):
                    print(p, leader)
                break
    elif cmd == "check":
        sys.exit(check(*args))
    else:
        sys.exit(f"unknown command {cmd}")
