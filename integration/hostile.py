#!/usr/bin/env python3
"""Hostile-client suite: runs the release binary and attacks it with hand-built Kafka frames
over real TCP on 127.0.0.1.

Usage:
    integration/hostile.sh path/to/tiercel [--full] [--only 1,3,5] [--keep]

    (default)  QUICK sizes, meant for CI: well under ~4 minutes on a 2-core machine
    --full     the full-size attacks (much longer)
    --only     run only the listed attack classes (numbers 1-7)
    --keep     keep every class's temp root (by default only failing classes' roots are kept)

Needs Python 3 with the stdlib and confluent-kafka (installed with pip3 when missing).
Exits non-zero when any check fails; prints one PASS/FAIL line per attack class with the
measured numbers, then a summary table.

Every class starts its own broker:
    BIN --listen 127.0.0.1:PORT --metrics-listen 127.0.0.1:MPORT --data-dir ROOT/data
        --log-level info [extra flags]
with cwd=ROOT (a fresh temp dir) and stdout/stderr to ROOT/broker.log.

After every class the suite checks:
  (a) the broker process is alive;
  (b) on a new connection ApiVersions v0 and then Metadata v4 each answer within 2 s;
  (c) RSS stayed under 512 MiB: VmRSS is sampled every 100 ms from /proc/PID/status for the
      whole class (any sample >= 512 MiB fails), and VmHWM (the kernel's peak) is reported and
      must be under the bound too;
  (d) for every topic the class touches: a confluent_kafka Consumer (librdkafka) reads it from
      the log start to the high watermark with no message errors, offsets contiguous from 0,
      payloads equal to what the suite's own good produces wrote;
  (e) nothing but `data`, `data.tier` (the default tier directory, `<data_dir>.tier`, where
      the catalog and closed segments are tiered) and `broker.log` appeared in ROOT: no request
      makes the broker write anywhere else;
  then SIGTERM: the broker must exit within 40 s (the time is reported; SIGKILL and FAIL
  otherwise). A `panicked` line in broker.log fails the class too.

Attack classes (QUICK / FULL):
  1 poison batches: Produce v7 acks=-1 of malformed v2 batches (correct CRC-32C) interleaved with
    good batches: record count above/below the records, count 2^31-1, negative record length,
    record length 2^31, overlong varint, records truncated mid-record, garbage after the last
    record, offset deltas not 0..n-1, codecs gzip/snappy/lz4/zstd over garbage, codecs 5/6/7,
    gzip holding valid records plus garbage, garbage behind a valid gzip stream, a bad CRC.
    Each must get CORRUPT_MESSAGE (2) or INVALID_RECORD (87), each good batch 0.
    Decompression bombs (gzip, one record whose value is 1 GiB of zeros, ~1 MB compressed) to
    a normal and to a compacted topic must get MESSAGE_TOO_LARGE (10); FULL also sends 4 bombs
    at once over 4 connections. Then (d): only the good batches are stored.
  2 long polls that disconnect (--max-connections 300): 300 clients each send Fetch v4
    max_wait_ms=2^31-1 at the log end and close; a new client must get ApiVersions within 2 s.
    Then 50 such long polls stay connected while SIGTERM is sent: exit within 40 s.
  3 trickled frames: 200 / 1000 connections each announce a 100,000,000-byte request, send a few
    header bytes and then 1 byte every 50 ms for ~10 s; RSS bound holds (growth reported) and
    health probes (every second) answer within 2 s meanwhile.
  4 topic-creation storm: two connections each send one Metadata v4 naming 20,000 / 100,000
    unknown topics with allow_auto_topic_creation=true, concurrently; a health probe every
    0.5 s must answer within 2 s; every requested topic gets an entry; the topics that exist
    afterwards are exactly those reported created; throttle_time_ms is reported.
  5 big fetches by slow readers: 24 MB / 48 MB in one partition (confluent_kafka Producer,
    acks=all); 6 connections with a tiny SO_RCVBUF send Fetch v4 max_bytes=partition_max_bytes
    =2^31-1 from offset 0 and never read; held 10 s; RSS growth reported; bound holds.
  6 group flood: JoinGroup v4 (empty member id: MEMBER_ID_REQUIRED) to 20,000 / 210,000 new
    groups, pipelined over 4 connections in windows of 500; every request is answered; then RSS,
    size and scrape time of GET /metrics (fail above 20 MB or 2 s), and again 5 s later.
  7 disk amplification: a topic of 64 / 1000 partitions, one ~1 KB record each; allocated bytes
    (st_blocks*512 over ROOT/data) must not exceed partitions x (1 MiB + 64 KiB) + 16 MiB.
"""

import argparse
import collections
import gc
import os
import random
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import zlib


def ensure_confluent_kafka():
    try:
        import confluent_kafka  # noqa: F401
        return
    except ImportError:
        pass
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "confluent-kafka"]
    if subprocess.call(cmd) != 0:
        subprocess.check_call(cmd + ["--break-system-packages"])


ensure_confluent_kafka()
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

MiB = 1 << 20
RSS_BOUND = 512 * MiB
PROBE_LIMIT_S = 2.0
SHUTDOWN_LIMIT_S = 40.0
DEFAULT_MESSAGE_MAX_BYTES = 1_048_588

ERR_NAMES = {0: "NONE", 2: "CORRUPT_MESSAGE", 3: "UNKNOWN_TOPIC_OR_PARTITION",
             10: "MESSAGE_TOO_LARGE", 79: "MEMBER_ID_REQUIRED", 87: "INVALID_RECORD",
             89: "THROTTLING_QUOTA_EXCEEDED"}


def err_name(code):
    return f"{code} ({ERR_NAMES.get(code, '?')})"


# --------------------------------------------------------------------------------------------
# CRC-32C (Castagnoli), varints, record batches
# --------------------------------------------------------------------------------------------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC-32C check value"


def uvarint(u):
    out = bytearray()
    while True:
        b = u & 0x7F
        u >>= 7
        if u:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n):
    """Zig-zag varint/varlong (Kafka's signed encoding)."""
    return uvarint((n << 1) ^ (n >> 63))


def record_body(offset_delta, value, key=None, ts_delta=0):
    """A record without its length prefix."""
    out = bytearray(b"\x00")  # attributes
    out += varint(ts_delta) + varint(offset_delta)
    if key is None:
        out += varint(-1)
    else:
        out += varint(len(key)) + key
    if value is None:
        out += varint(-1)
    else:
        out += varint(len(value)) + value
    out += varint(0)  # headers
    return bytes(out)


def record(offset_delta, value, key=None, ts_delta=0):
    body = record_body(offset_delta, value, key, ts_delta)
    return varint(len(body)) + body


def now_ms():
    return int(time.time() * 1000)


def batch(records_section, count, codec=0, last_offset_delta=None, base_ts=None, max_ts=None,
          corrupt_crc=False):
    """A magic-v2 record batch around `records_section` (already encoded, maybe compressed)."""
    base_ts = now_ms() if base_ts is None else base_ts
    max_ts = base_ts if max_ts is None else max_ts
    if last_offset_delta is None:
        last_offset_delta = max(count - 1, 0) if 0 <= count < 2**31 else 0
    after_crc = struct.pack(">hiqqqhii", codec, last_offset_delta, base_ts, max_ts, -1, -1, -1,
                            count) + records_section
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    body = struct.pack(">ibI", 0, 2, crc) + after_crc  # partitionLeaderEpoch, magic, crc
    return struct.pack(">qi", 0, len(body)) + body


def gzip_bytes(data):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


# --------------------------------------------------------------------------------------------
# Kafka framing (non-flexible versions, request header v1)
# --------------------------------------------------------------------------------------------

def enc_str(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def enc_bytes(b):
    if b is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(b)) + b


def enc_array(items):
    if items is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(items)) + b"".join(items)


def frame(api_key, version, corr, body, client_id="hostile"):
    payload = struct.pack(">hhi", api_key, version, corr) + enc_str(client_id) + body
    return struct.pack(">i", len(payload)) + payload


class Reader:
    def __init__(self, data):
        self.d = data
        self.i = 0

    def _take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.i)
        self.i += struct.calcsize(fmt)
        return v[0]

    def i8(self):
        return self._take(">b")

    def i16(self):
        return self._take(">h")

    def i32(self):
        return self._take(">i")

    def i64(self):
        return self._take(">q")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.d[self.i:self.i + n]
        self.i += n
        return s.decode(errors="replace")

    def bytes_(self):
        n = self.i32()
        if n < 0:
            return None
        s = self.d[self.i:self.i + n]
        self.i += n
        return s

    def array(self, fn):
        n = self.i32()
        return None if n < 0 else [fn() for _ in range(n)]


def api_versions_v0(corr):
    return frame(18, 0, corr, b"")


def metadata_v4(corr, topics, allow_auto=False):
    """topics: list of names, or None for all topics."""
    body = enc_array(None if topics is None else [enc_str(t) for t in topics])
    return frame(3, 4, corr, body + struct.pack(">b", 1 if allow_auto else 0))


def produce_v7(corr, topic, records_bytes, partition=0, acks=-1, timeout_ms=30000):
    part = struct.pack(">i", partition) + enc_bytes(records_bytes)
    topic_data = enc_str(topic) + enc_array([part])
    body = enc_str(None) + struct.pack(">hi", acks, timeout_ms) + enc_array([topic_data])
    return frame(0, 7, corr, body)


def fetch_v4(corr, topic, offset, partition=0, max_wait_ms=500, min_bytes=1,
             max_bytes=2**31 - 1, partition_max_bytes=1 << 20):
    part = struct.pack(">iqi", partition, offset, partition_max_bytes)
    topic_data = enc_str(topic) + enc_array([part])
    body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0) + enc_array([topic_data])
    return frame(1, 4, corr, body)


CONSUMER_SUBSCRIPTION = struct.pack(">hii", 0, 0, -1)  # version 0, no topics, null user data


def join_group_v4(corr, group, member="", session_ms=10000, rebalance_ms=10000):
    protocols = [enc_str("range") + enc_bytes(CONSUMER_SUBSCRIPTION)]
    body = (enc_str(group) + struct.pack(">ii", session_ms, rebalance_ms) + enc_str(member)
            + enc_str("consumer") + enc_array(protocols))
    return frame(11, 4, corr, body)


def parse_api_versions_v0(body):
    r = Reader(body)
    err = r.i16()
    apis = r.array(lambda: (r.i16(), r.i16(), r.i16()))
    return err, apis


def parse_metadata_v4(body):
    r = Reader(body)
    throttle = r.i32()
    brokers = r.array(lambda: (r.i32(), r.string(), r.i32(), r.string()))
    r.string()  # cluster id
    r.i32()  # controller id

    def partition():
        err, idx, leader = r.i16(), r.i32(), r.i32()
        r.array(r.i32)
        r.array(r.i32)
        return err, idx, leader

    def topic():
        err, name, _internal = r.i16(), r.string(), r.i8()
        parts = r.array(partition)
        return err, name, parts

    topics = r.array(topic)
    return throttle, brokers, topics


def parse_produce_v7(body):
    r = Reader(body)

    def part():
        return r.i32(), r.i16(), r.i64(), r.i64(), r.i64()

    topics = r.array(lambda: (r.string(), r.array(part)))
    throttle = r.i32()
    return topics, throttle


def parse_join_group_v4(body):
    r = Reader(body)
    throttle, err, _gen = r.i32(), r.i16(), r.i32()
    r.string()
    r.string()
    member = r.string()
    return throttle, err, member


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_response(sock):
    """(correlation id, body) of one non-flexible response."""
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    data = recv_exact(sock, size)
    return struct.unpack_from(">i", data)[0], data[4:]


def connect(port, timeout=10.0, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def roundtrip(port, request, corr, timeout=30.0):
    with connect(port, timeout) as s:
        s.sendall(request)
        got, body = read_response(s)
        if got != corr:
            raise ValueError(f"correlation id {got}, expected {corr}")
        return body


def produce_raw(port, topic, records_bytes, partition=0, timeout=60.0):
    """Produce v7 acks=-1 over a new connection: (error code, base offset)."""
    corr = random.randint(1, 2**30)
    body = roundtrip(port, produce_v7(corr, topic, records_bytes, partition), corr, timeout)
    topics, _ = parse_produce_v7(body)
    _, parts = topics[0]
    _, err, base, _, _ = parts[0]
    return err, base


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Broker process, RSS sampling, probes
# --------------------------------------------------------------------------------------------

def proc_status(pid, field):
    """A /proc/PID/status field in bytes, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


class Broker:
    def __init__(self, binary, root, extra=()):
        self.root = root
        self.port = free_port()
        self.mport = free_port()
        self.cmd = [binary, "--listen", f"127.0.0.1:{self.port}",
                    "--metrics-listen", f"127.0.0.1:{self.mport}",
                    "--data-dir", os.path.join(root, "data"), "--log-level", "info", *extra]
        self.log = open(os.path.join(root, "broker.log"), "ab")
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, cwd=root, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=60.0):
        """Seconds from spawn until ApiVersions v0 is answered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"broker exited with {self.proc.returncode} while starting")
            try:
                err, _ = parse_api_versions_v0(roundtrip(self.port, api_versions_v0(1), 1, 1.0))
                if err == 0:
                    return time.monotonic() - self.spawned
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"broker did not answer ApiVersions within {timeout} s")

    def rss(self):
        return proc_status(self.pid, "VmRSS")

    def hwm(self):
        return proc_status(self.pid, "VmHWM")

    def terminate(self, limit=SHUTDOWN_LIMIT_S):
        """SIGTERM; (exited in time, seconds, return code). SIGKILL after `limit`."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=limit)
            return True, time.monotonic() - t0, rc
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            return False, time.monotonic() - t0, rc
        finally:
            self.log.close()

    def kill(self):
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        if not self.log.closed:
            self.log.close()


class RssSampler(threading.Thread):
    """VmRSS of `pid` every 100 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = []  # (monotonic time, bytes)
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            v = proc_status(self.pid, "VmRSS")
            if v is not None:
                self.samples.append((time.monotonic(), v))
            self._halt.wait(0.1)

    def stop(self):
        self._halt.set()
        self.join()

    def peak(self, since=None, until=None):
        vals = [v for t, v in self.samples
                if (since is None or t >= since) and (until is None or t <= until)]
        return max(vals) if vals else None


def health_probe(port, topic=None, limit=PROBE_LIMIT_S):
    """ApiVersions v0 then Metadata v4 (of `topic`, or of no topic) on a new connection, each
    within `limit` seconds: (ok, detail, api seconds, metadata seconds)."""
    api_s = meta_s = None
    try:
        with connect(port, limit) as s:
            t0 = time.monotonic()
            s.sendall(api_versions_v0(101))
            corr, body = read_response(s)
            api_s = time.monotonic() - t0
            err, apis = parse_api_versions_v0(body)
            if corr != 101 or err != 0 or not apis:
                return False, f"ApiVersions corr {corr} error {err} apis {len(apis or [])}", api_s, None
            t0 = time.monotonic()
            s.sendall(metadata_v4(102, [] if topic is None else [topic]))
            corr, body = read_response(s)
            meta_s = time.monotonic() - t0
            _, brokers, topics = parse_metadata_v4(body)
            if corr != 102 or not brokers:
                return False, f"Metadata corr {corr}, {len(brokers or [])} brokers", api_s, meta_s
            if topic is not None and (len(topics) != 1 or topics[0][0] != 0):
                return False, f"Metadata of {topic}: {topics}", api_s, meta_s
    except (OSError, ValueError, struct.error) as e:
        return False, f"{type(e).__name__}: {e} (api {fmt_s(api_s)}, metadata {fmt_s(meta_s)})", api_s, meta_s
    ok = api_s <= limit and meta_s <= limit
    return ok, f"ApiVersions {api_s * 1000:.1f} ms, Metadata {meta_s * 1000:.1f} ms", api_s, meta_s


def fmt_s(v):
    return "-" if v is None else f"{v:.3f} s"


def fmt_mib(v):
    return "n/a" if v is None else f"{v / MiB:.1f} MiB"


def scrape_metrics(mport, timeout=30.0):
    """(bytes, seconds) of GET /metrics."""
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=timeout) as r:
        data = r.read()
    return len(data), time.monotonic() - t0


def kafka_quiet(conf):
    conf = dict(conf)
    conf.setdefault("log_level", 2)
    conf.setdefault("error_cb", lambda err: None)
    return conf


def create_topic(bootstrap, name, partitions=1, config=None):
    admin = AdminClient(kafka_quiet({"bootstrap.servers": bootstrap}))
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                       config=config or {})], operation_timeout=30)
    fs[name].result(timeout=60)
    del admin
    gc.collect()


def consume_all(bootstrap, topic, partitions, timeout=180.0):
    """Reads every partition from its log start to the high watermark: {partition: dict(low,
    high, records=[(offset, value)], errors=[...])}."""
    c = Consumer(kafka_quiet({"bootstrap.servers": bootstrap,
                              "group.id": f"hostile-check-{random.getrandbits(32)}",
                              "enable.auto.commit": False, "enable.partition.eof": False,
                              "auto.offset.reset": "earliest"}))
    out = {}
    try:
        for p in partitions:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            out[p] = {"low": low, "high": high, "records": [], "errors": []}
        c.assign([TopicPartition(topic, p, out[p]["low"]) for p in partitions])
        remaining = {p for p in partitions if out[p]["high"] > out[p]["low"]}
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=1.0):
                if m.error():
                    p = m.partition() if m.partition() in out else partitions[0]
                    out[p]["errors"].append(str(m.error()))
                    continue
                p = m.partition()
                out[p]["records"].append((m.offset(), m.value()))
                if m.offset() >= out[p]["high"] - 1:
                    remaining.discard(p)
        for p in remaining:
            out[p]["errors"].append(f"timed out after {timeout} s")
    finally:
        c.close()
    return out


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

class Result:
    def __init__(self, num, title):
        self.num = num
        self.title = title
        self.checks = []  # (ok, name, detail)
        self.numbers = {}
        self.t0 = time.monotonic()
        self.elapsed = None
        self.headline = ""  # the class's key numbers, for the summary table

    def check(self, ok, name, detail=""):
        ok = bool(ok)
        self.checks.append((ok, name, detail))
        print(f"    {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    def note(self, key, value):
        self.numbers[key] = value
        print(f"    #    {key} = {value}", flush=True)

    def info(self, text):
        print(f"    .    {text}", flush=True)

    @property
    def ok(self):
        return bool(self.checks) and all(c[0] for c in self.checks)

    def failures(self):
        return [f"{n}: {d}" for ok, n, d in self.checks if not ok]


class Ctx:
    """What a class's attack shares with the common checks."""

    def __init__(self, binary, full, root, result):
        self.binary = binary
        self.full = full
        self.root = root
        self.res = result
        self.broker = None
        self.sampler = None
        self.expect = {}  # topic -> {partition: [payload bytes]}
        self.probe_topic = None
        self.before_stop = None  # callable run just before SIGTERM
        self.sockets = []  # closed once the class is over

    def start(self, extra=()):
        self.broker = Broker(self.binary, self.root, extra)
        self.sampler = RssSampler(self.broker.pid)
        self.sampler.start()
        ready = self.broker.wait_ready()
        self.res.note("startup", f"{ready:.2f} s")
        return self.broker


def run_class(num, title, fn, binary, full, keep):
    res = Result(num, title)
    print(f"\n=== [{num}] {title} ({'FULL' if full else 'QUICK'})", flush=True)
    root = tempfile.mkdtemp(prefix=f"hostile-{num}-")
    ctx = Ctx(binary, full, root, res)
    try:
        fn(ctx)
    except Exception as e:  # an attack that could not run to its end is a failure
        res.check(False, "attack ran to completion", f"{type(e).__name__}: {e}")
        traceback.print_exc()
    try:
        common_checks(ctx)
    except Exception as e:
        res.check(False, "common checks ran", f"{type(e).__name__}: {e}")
        traceback.print_exc()
    finally:
        if ctx.broker is not None:
            ctx.broker.kill()
        if ctx.sampler is not None and ctx.sampler.is_alive():
            ctx.sampler.stop()
        for s in ctx.sockets:
            s.close()
    res.elapsed = time.monotonic() - res.t0
    verdict = "PASS" if res.ok else "FAIL"
    nums = ", ".join(f"{k}={v}" for k, v in res.numbers.items())
    print(f"[{num}] {title}: {verdict} in {res.elapsed:.1f} s | {nums}", flush=True)
    if not res.ok:
        for f in res.failures():
            print(f"    FAILED: {f}", flush=True)
        tail = tail_log(os.path.join(root, "broker.log"), 15)
        if tail:
            print("    broker.log tail:\n" + "\n".join("      " + line for line in tail), flush=True)
    if keep or not res.ok:
        print(f"    root kept: {root}", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return res


def tail_log(path, n):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    return [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in lines[-n:]]


def common_checks(ctx):
    res, b = ctx.res, ctx.broker
    if b is None:
        res.check(False, "(a) broker started")
        return
    alive = b.alive()
    res.check(alive, "(a) broker process alive", f"pid {b.pid}" if alive else f"exited with {b.proc.returncode}")
    hwm = None
    if alive:
        ok, detail, _, _ = health_probe(b.port, ctx.probe_topic)
        res.check(ok, "(b) new connection: ApiVersions v0 + Metadata v4 within 2 s", detail)
        for topic, expected in ctx.expect.items():
            consumer_check(ctx, topic, expected)
        if ctx.before_stop is not None:
            ctx.before_stop()
        hwm = b.hwm()
        exited, secs, rc = b.terminate()
        res.check(exited, "SIGTERM: exit within 40 s", f"{secs:.2f} s, exit status {rc}")
        res.note("sigterm_exit", f"{secs:.2f} s")
    ctx.sampler.stop()
    peak = ctx.sampler.peak()
    n = len(ctx.sampler.samples)
    res.check(peak is not None and peak < RSS_BOUND and (hwm is None or hwm < RSS_BOUND),
              "(c) RSS under 512 MiB (every 100 ms sample, and VmHWM)",
              f"peak sample {fmt_mib(peak)} over {n} samples, VmHWM {fmt_mib(hwm)} (read just before SIGTERM)")
    res.note("rss_peak", fmt_mib(peak))
    res.note("vmhwm", fmt_mib(hwm))
    extra = sorted(set(os.listdir(ctx.root)) - {"data", "data.tier", "broker.log"})
    res.check(not extra, "(e) nothing but data/, data.tier/ and broker.log in ROOT",
              "clean" if not extra else f"also found: {extra}")
    panics = [line for line in tail_log(os.path.join(ctx.root, "broker.log"), 10**9)
              if "panicked" in line]
    res.check(not panics, "no panic in broker.log", panics[0][:300] if panics else "none")


def consumer_check(ctx, topic, expected):
    """(d): librdkafka reads `topic` from the log start to the high watermark: no errors,
    contiguous offsets from 0, payloads as expected[partition]."""
    res = ctx.res
    try:
        got = consume_all(ctx.broker.bootstrap, topic, sorted(expected))
    except KafkaException as e:
        res.check(False, f"(d) consumer reads {topic}", f"KafkaException: {e}")
        return
    problems = []
    total = 0
    for p, want in sorted(expected.items()):
        g = got.get(p, {"errors": ["no data"], "records": [], "low": None, "high": None})
        offs = [o for o, _ in g["records"]]
        vals = [v for _, v in g["records"]]
        total += len(offs)
        if g["errors"]:
            problems.append(f"p{p}: {len(g['errors'])} errors, first {g['errors'][0]}")
        if g["low"] != 0:
            problems.append(f"p{p}: log start {g['low']}, expected 0")
        if offs != list(range(g["low"] or 0, (g["low"] or 0) + len(offs))):
            gaps = [(a, b) for a, b in zip(offs, offs[1:]) if b != a + 1][:3]
            problems.append(f"p{p}: offsets not contiguous (first jumps {gaps})")
        if g["high"] != len(want):
            problems.append(f"p{p}: high watermark {g['high']}, expected {len(want)}")
        if vals != want:
            first = next((i for i, (a, b) in enumerate(zip(vals, want)) if a != b), min(len(vals), len(want)))
            problems.append(f"p{p}: payloads differ ({len(vals)} read, {len(want)} written; "
                            f"first difference at index {first})")
    res.check(not problems, f"(d) consumer reads {topic} cleanly",
              f"{len(expected)} partition(s), {total} records, offsets 0..high-1 contiguous, payloads equal"
              if not problems else "; ".join(problems[:6]))


# --------------------------------------------------------------------------------------------
# 1. poison batches
# --------------------------------------------------------------------------------------------

_ZERO_CHUNKS = {}


def gzip_of_pieces(pieces, chunk=8 * MiB):
    """A gzip member of `pieces` (bytes, or an int: that many zero bytes, a multiple of `chunk`),
    built without ever holding the uncompressed data: every piece is deflated by a fresh
    compressor ending in a full flush (byte-aligned, no reference to earlier data), so the one
    deflated chunk of `chunk` zeros can be repeated; the trailer's CRC-32 and size cover it all.
    gzip -d / zlib / Java's GZIPInputStream read it like any other gzip stream."""
    if chunk not in _ZERO_CHUNKS:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        _ZERO_CHUNKS[chunk] = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    zeros, zchunk = bytes(chunk), _ZERO_CHUNKS[chunk]
    zeros_crc = zlib.crc32(zeros)
    out = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"]  # gzip header: deflate, no name, mtime 0
    merged = []
    for p in pieces:  # adjacent byte pieces deflate as one (fewer flush markers)
        if merged and isinstance(p, bytes) and isinstance(merged[-1], bytes):
            merged[-1] += p
        else:
            merged.append(p)
    crc = size = 0
    for p in merged:
        if isinstance(p, int):
            if p % chunk:
                raise ValueError(f"{p} zero bytes is not a multiple of {chunk}")
            for _ in range(p // chunk):
                out.append(zchunk)
                crc = zlib.crc32(zeros, crc) if crc else zeros_crc
            size += p
        else:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            out.append(c.compress(p) + c.flush(zlib.Z_FULL_FLUSH))
            crc = zlib.crc32(p, crc)
            size += len(p)
    out.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))  # the final block
    out.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return b"".join(out)


def bomb_pieces(records, value_len):
    """`records` records (keyed, for compacted topics) whose values are `value_len` zeros."""
    pieces = []
    for i in range(records):
        head = b"\x00" + varint(0) + varint(i) + varint(6) + b"bomb%02d" % (i % 100) + varint(value_len)
        body_len = len(head) + value_len + 1
        pieces += [varint(body_len) + head, value_len, varint(0)]
    return pieces


def bomb_batches():
    """(name, batch): 1 GiB of zeros in one record (the record's own length gives it away), and
    1 GiB spread over 128 records of 8 MiB (each one small enough: only counting what comes out
    of the codec can stop it)."""
    out = []
    for name, n, each in (("one record of 1 GiB of zeros", 1, 1 << 30),
                          ("128 records of 8 MiB of zeros", 128, 8 * MiB)):
        section = gzip_of_pieces(bomb_pieces(n, each))
        out.append((name, batch(section, n, codec=1)))
    return out


def poison_list():
    four = b"".join(record(i, b"poison-%d" % i, key=b"k%d" % i) for i in range(4))
    not_compressed = b"definitely not compressed data, just bytes"
    ts = now_ms()
    items = [
        ("record count above the records (5 for 4)", batch(four, 5)),
        ("record count below the records (3 for 4)", batch(four, 3)),
        ("record count 2^31-1", batch(four, 2**31 - 1, last_offset_delta=3)),
        ("negative record length (-1)", batch(varint(-1) + b"\x00\x00\x00\x02\x00", 1)),
        ("negative record length (-100) before a valid record",
         batch(varint(-100) + record(0, b"x"), 1)),
        ("record length 2^31 (varint)", batch(varint(2**31) + record_body(0, b"x"), 1)),
        ("overlong varint (11 bytes) as record length", batch(b"\xff" * 10 + b"\x01" + record_body(0, b"x"), 1)),
        ("overlong varint (10 bytes) as value length",
         batch(varint(20) + b"\x00" + varint(0) + varint(0) + varint(-1) + b"\x80" * 9 + b"\x01" + b"x" * 5, 1)),
        ("records truncated mid-record", batch(four[:-4], 4)),
        ("records truncated inside a length varint", batch(four + b"\x80", 5)),
        ("garbage after the last record", batch(four + b"GARBAGE!", 4)),
        ("offset deltas 0,2,3", batch(record(0, b"a") + record(2, b"b") + record(3, b"c"), 3,
                                       last_offset_delta=3)),
        ("offset deltas 1,2,3", batch(record(1, b"a") + record(2, b"b") + record(3, b"c"), 3,
                                       last_offset_delta=3)),
        ("offset deltas 0,0,1", batch(record(0, b"a") + record(0, b"b") + record(1, b"c"), 3,
                                       last_offset_delta=2)),
        ("lastOffsetDelta 7 for 4 records", batch(four, 4, last_offset_delta=7)),
        ("bad CRC-32C", batch(four, 4, corrupt_crc=True)),
    ]
    for codec, name in ((1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")):
        items.append((f"{name} attribute over non-compressed garbage", batch(not_compressed, 1, codec=codec)))
        items.append((f"{name} attribute over plain (uncompressed) records", batch(four, 4, codec=codec)))
    for codec in (5, 6, 7):
        items.append((f"undefined codec {codec} over valid records", batch(four, 4, codec=codec)))
        items.append((f"undefined codec {codec} over garbage", batch(not_compressed, 1, codec=codec)))
    items.append(("gzip of valid records followed by garbage records",
                  batch(gzip_bytes(four + b"GARBAGE-RECORDS-GARBAGE"), 4, codec=1)))
    items.append(("gzip of valid records with count above them (5 for 4)",
                  batch(gzip_bytes(four), 5, codec=1)))
    items.append(("gzip stream truncated", batch(gzip_bytes(four)[:-12], 4, codec=1)))
    return items


def lenient_list():
    """Batches Kafka itself accepts although they are odd: the broker's answer is reported, not
    judged; when one is stored its records join what the consumer check expects."""
    vals = [b"lenient-%d" % i for i in range(4)]
    four = b"".join(record(i, v) for i, v in enumerate(vals))
    late = [b"late"]
    ts = int(time.time() * 1000)
    # Java's GZIPInputStream (and so Kafka) ignores bytes behind the last gzip member
    return [("valid gzip stream, then garbage behind it",
             batch(gzip_bytes(four) + b"trailing garbage after the gzip member", 4, codec=1), vals),
            # Kafka rewrites a CreateTime batch's max timestamp from its records (some clients
            # send -1 there)
            ("record timestamp after maxTimestamp",
             batch(record(0, late[0], ts_delta=5000), 1, base_ts=ts, max_ts=ts), late)]


class GoodWriter:
    """The suite's own good produces: records it expects to read back."""

    def __init__(self, ctx, topic, keyed=False):
        self.ctx, self.topic, self.keyed = ctx, topic, keyed
        self.values = []
        ctx.expect[topic] = {0: self.values}
        self.n = 0

    def produce(self, label):
        vals = [b"good-%s-%d-%d" % (self.topic.encode(), self.n, i) for i in range(3)]
        keys = [b"key-%d-%d" % (self.n, i) if self.keyed else None for i in range(3)]
        recs = b"".join(record(i, v, key=k) for i, (v, k) in enumerate(zip(vals, keys)))
        codec = 1 if self.n % 2 else 0
        body = gzip_bytes(recs) if codec else recs
        self.n += 1
        err, base = produce_raw(self.ctx.broker.port, self.topic, batch(body, 3, codec=codec))
        ok = err == 0 and base == len(self.values)
        if ok:
            self.values.extend(vals)
        else:
            self.ctx.res.check(False, f"good batch ({label}) to {self.topic}",
                               f"error {err_name(err)}, base offset {base}, expected {len(self.values)}")
            if err == 0:  # stored, at an unexpected offset: keep the expectation truthful
                self.values.extend(vals)
        return ok


def class_poison(ctx):
    res = ctx.res
    t0 = time.monotonic()
    bombs = bomb_batches()
    for i, (name, bomb) in enumerate(bombs):
        res.note(f"bomb{i + 1}", f"gzip batch of {name}: {len(bomb)} bytes")
    res.note("bombs_built", f"{time.monotonic() - t0:.1f} s")
    extra = []
    # a batch's size counts against max.message.bytes; the bombs must get past that check
    if max(len(bomb) for _, bomb in bombs) > DEFAULT_MESSAGE_MAX_BYTES:
        extra = ["--message-max-bytes", "2097152"]
        res.info("a bomb does not fit the default max.message.bytes: --message-max-bytes 2097152")
    b = ctx.start(extra)
    create_topic(b.bootstrap, "poison", 1)
    create_topic(b.bootstrap, "poison-compact", 1, {"cleanup.policy": "compact"})
    ctx.probe_topic = "poison"
    good = GoodWriter(ctx, "poison")
    good_c = GoodWriter(ctx, "poison-compact", keyed=True)

    good.produce("first")
    refused = collections.Counter()
    for name, bad in poison_list():
        try:
            err, _ = produce_raw(b.port, "poison", bad)
            detail = err_name(err)
        except (OSError, ValueError, struct.error) as e:
            err, detail = None, f"no answer: {type(e).__name__}: {e}"
        refused[err] += 1
        res.check(err in (2, 87), f"poison: {name}", detail)
        good.produce(f"after {name}")
    res.note("poison_batches", f"{sum(refused.values())} sent, codes {dict(refused)}")
    res.headline = f"{sum(v for k, v in refused.items() if k in (2, 87))}/{sum(refused.values())} poison refused"
    for name, odd, vals in lenient_list():
        err, base = produce_raw(b.port, "poison", odd)
        res.info(f"lenient (reported, not judged): {name}: {err_name(err)}")
        if err == 0:
            good.values.extend(vals)
        good.produce(f"after {name}")

    def send_bomb(topic, bomb):
        t = time.monotonic()
        try:
            err, _ = produce_raw(b.port, topic, bomb, timeout=300)
        except (OSError, ValueError, struct.error) as e:
            return None, time.monotonic() - t, f"{type(e).__name__}: {e}"
        return err, time.monotonic() - t, ""

    for name, bomb in bombs:
        for topic in ("poison", "poison-compact"):
            rss0 = b.rss()
            t = time.monotonic()
            err, secs, why = send_bomb(topic, bomb)
            time.sleep(0.25)  # at least two RSS samples after the answer (not a speed assertion)
            peak = ctx.sampler.peak(since=t)
            res.headline += f"; bomb {err}"
            res.check(err == 10, f"decompression bomb ({name}) to {topic}",
                      f"{err_name(err) if err is not None else why} in {secs:.2f} s; "
                      f"RSS {fmt_mib(rss0)} -> peak {fmt_mib(peak)}")
            (good if topic == "poison" else good_c).produce(f"after the bomb to {topic}")

    if ctx.full:
        for name, bomb in bombs:
            results = [None] * 4
            topics = ["poison", "poison-compact", "poison", "poison-compact"]

            def one(i):
                results[i] = send_bomb(topics[i], bomb)

            t = time.monotonic()
            threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            time.sleep(0.25)
            peak = ctx.sampler.peak(since=t)
            codes = [r[0] for r in results]
            res.check(all(c == 10 for c in codes), f"4 bombs ({name}) at once from 4 connections",
                      f"codes {codes}, {max(r[1] for r in results):.2f} s, RSS peak {fmt_mib(peak)}")
    good.produce("last")
    good_c.produce("last")


# --------------------------------------------------------------------------------------------
# 2. long polls that disconnect
# --------------------------------------------------------------------------------------------

def class_long_polls(ctx):
    res = ctx.res
    b = ctx.start(["--max-connections", "300"])
    create_topic(b.bootstrap, "polls", 1)
    ctx.probe_topic = "polls"
    good = GoodWriter(ctx, "polls")
    good.produce("seed")
    end = len(good.values)

    def park(n):
        socks = []
        for i in range(n):
            s = connect(b.port, 10)
            s.sendall(fetch_v4(1000 + i, "polls", end, max_wait_ms=2**31 - 1, min_bytes=1))
            socks.append(s)
        return socks

    t = time.monotonic()
    parked = park(300)
    res.note("long_polls_opened", f"300 in {time.monotonic() - t:.2f} s")
    time.sleep(0.5)  # let the broker pick them up (not a speed assertion)
    early = 0
    for s in parked:
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_PEEK):
                early += 1
        except BlockingIOError:
            pass
    res.note("long_polls_answered_early", early)
    # information only: with all 300 slots taken a 301st client should wait
    try:
        with connect(b.port, 1.0) as s:
            s.sendall(api_versions_v0(7))
            read_response(s)
            res.info("a 301st client was answered while 300 long polls were parked")
    except OSError:
        res.info("a 301st client was not answered within 1 s while 300 long polls were parked (limit in force)")
    for s in parked:
        s.close()
    t = time.monotonic()
    try:
        with connect(b.port, PROBE_LIMIT_S) as s:
            s.sendall(api_versions_v0(8))
            corr, body = read_response(s)
            secs = time.monotonic() - t
            ok = corr == 8 and parse_api_versions_v0(body)[0] == 0 and secs <= PROBE_LIMIT_S
            detail = f"{secs * 1000:.0f} ms after the 300 clients closed"
    except OSError as e:
        ok, detail = False, f"{type(e).__name__}: {e} after {time.monotonic() - t:.2f} s"
    res.check(ok, "slots released: a new client gets ApiVersions within 2 s", detail)
    res.headline = f"new client after 300 long polls left: {detail.split(' after')[0]}; SIGTERM below is with 50 parked"

    stay = []

    def park_50():
        stay.extend(park(50))
        time.sleep(0.5)
        res.info("50 long polls parked and connected; sending SIGTERM")

    ctx.before_stop = park_50
    ctx.sockets = stay


# --------------------------------------------------------------------------------------------
# 3. trickled frames
# --------------------------------------------------------------------------------------------

class Prober(threading.Thread):
    """A health probe every `every` seconds until stopped."""

    def __init__(self, port, topic, every):
        super().__init__(daemon=True)
        self.port, self.topic, self.every = port, topic, every
        self.results = []  # (ok, detail, api_s, meta_s)
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            t = time.monotonic()
            self.results.append(health_probe(self.port, self.topic))
            self._halt.wait(max(0.0, self.every - (time.monotonic() - t)))

    def stop(self):
        self._halt.set()
        self.join()

    def summary(self):
        n = len(self.results)
        good = sum(1 for r in self.results if r[0])
        worst = max((max(r[2] or 0, r[3] or 0) for r in self.results), default=0)
        bad = [r[1] for r in self.results if not r[0]]
        return n, good, worst, bad


def class_trickle(ctx):
    res = ctx.res
    n = 1000 if ctx.full else 200
    b = ctx.start()
    time.sleep(0.5)
    rss_before = b.rss()
    socks = []
    for i in range(n):
        s = connect(b.port, 10)
        # 100,000,000 bytes announced (under socket.request.max.bytes), then a Produce v7 header
        s.sendall(struct.pack(">ihhi", 100_000_000, 0, 7, i) + b"\x00\x07hostile")
        s.setblocking(False)
        socks.append(s)
    prober = Prober(b.port, None, 1.0)
    prober.start()
    t0 = time.monotonic()
    open_ = set(range(n))
    closed_at = {}
    sent = 0
    tick = 0
    while time.monotonic() - t0 < 10.0:
        for i in list(open_):
            s = socks[i]
            try:
                if s.recv(1) == b"":
                    raise ConnectionResetError("peer closed")
            except BlockingIOError:
                pass
            except OSError:
                open_.discard(i)
                closed_at[i] = time.monotonic() - t0
                continue
            try:
                s.send(b"\x00")
                sent += 1
            except BlockingIOError:
                pass
            except OSError:
                open_.discard(i)
                closed_at[i] = time.monotonic() - t0
        tick += 1
        delay = t0 + tick * 0.05 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    during = ctx.sampler.peak(since=t0)
    prober.stop()
    for s in socks:
        s.close()
    res.note("connections", n)
    res.note("bytes_trickled", sent)
    res.note("closed_by_broker", f"{len(closed_at)}"
            + (f" (first after {min(closed_at.values()):.1f} s)" if closed_at else ""))
    res.note("rss_before", fmt_mib(rss_before))
    res.note("rss_during_peak", fmt_mib(during))
    res.note("rss_growth", fmt_mib(None if during is None or rss_before is None else during - rss_before))
    pn, pgood, worst, bad = prober.summary()
    res.headline = (f"{n} conns, RSS growth {res.numbers['rss_growth']}, "
                    f"probes {pgood}/{pn}, closed by broker {len(closed_at)}")
    res.check(pn > 0 and pgood == pn, "health probes answered within 2 s during the trickle",
              f"{pgood}/{pn} answered, slowest step {worst * 1000:.0f} ms" + (f"; first failure: {bad[0]}" if bad else ""))


# --------------------------------------------------------------------------------------------
# 4. topic-creation storm
# --------------------------------------------------------------------------------------------

def class_storm(ctx):
    res = ctx.res
    n = 100_000 if ctx.full else 20_000
    b = ctx.start()
    create_topic(b.bootstrap, "storm-base", 1)
    ctx.probe_topic = "storm-base"
    good = GoodWriter(ctx, "storm-base")
    good.produce("seed")

    outcome = {}

    def storm(tag):
        names = [f"storm-{tag}-{i:06d}" for i in range(n)]
        req = metadata_v4(50, names, allow_auto=True)
        t = time.monotonic()
        try:
            with connect(b.port, 900) as s:
                s.sendall(req)
                corr, body = read_response(s)
            secs = time.monotonic() - t
            throttle, _, topics = parse_metadata_v4(body)
            codes = collections.Counter(e for e, _, _ in topics)
            created = {name for e, name, _ in topics if e == 0}
            outcome[tag] = dict(secs=secs, throttle=throttle, codes=codes, created=created,
                                entries=len(topics), asked=set(names),
                                names={name for _, name, _ in topics}, frame=len(req), err=None)
        except Exception as e:
            outcome[tag] = dict(err=f"{type(e).__name__}: {e}", secs=time.monotonic() - t)

    threads = [threading.Thread(target=storm, args=(tag,)) for tag in ("a", "b")]
    prober = Prober(b.port, "storm-base", 0.5)
    t0 = time.monotonic()
    for th in threads:
        th.start()
    prober.start()
    for th in threads:
        th.join()
    prober.stop()
    res.note("storm_wall", f"{time.monotonic() - t0:.2f} s")
    created_total = 0
    for tag in ("a", "b"):
        o = outcome[tag]
        if o["err"]:
            res.check(False, f"storm request {tag} answered", f"{o['err']} after {o['secs']:.1f} s")
            continue
        res.check(o["entries"] == n and o["names"] == o["asked"],
                  f"storm request {tag}: one entry per requested topic",
                  f"{o['entries']} entries for {n} names ({o['frame']} byte request)")
        codes = {err_name(k): v for k, v in sorted(o["codes"].items())}
        res.note(f"storm_{tag}", f"{o['secs']:.2f} s, throttle_time_ms {o['throttle']}, codes {codes}")
        created_total += len(o["created"])
    pn, pgood, worst, bad = prober.summary()
    res.note("probes_during_storm", f"{pgood}/{pn} answered, slowest step {worst * 1000:.0f} ms")
    res.check(pn > 0 and pgood == pn, "health probe every 0.5 s answered within 2 s during the storm",
              f"{pgood}/{pn}" + (f"; first failure: {bad[0]}" if bad else ""))
    body = roundtrip(b.port, metadata_v4(60, None), 60, 120)
    _, _, topics = parse_metadata_v4(body)
    names = {name for e, name, _ in topics if e == 0}
    storm_names = {x for x in names if x.startswith("storm-a-") or x.startswith("storm-b-")}
    reported = set()
    for o in outcome.values():
        if not o.get("err"):
            reported |= o["created"]
    res.note("topics_after", len(names))
    res.headline = (f"topics after {len(names)}, throttle_time_ms "
                    f"{[o.get('throttle') for _, o in sorted(outcome.items())]}, probes {pgood}/{pn}")
    res.check(storm_names == reported,
              "topics that exist afterwards are exactly those reported created",
              f"{len(storm_names)} storm topics exist, {len(reported)} reported created"
              + ("" if storm_names == reported else
                 f" (exist, not reported: {len(storm_names - reported)}; reported, missing: {len(reported - storm_names)})"))


# --------------------------------------------------------------------------------------------
# 5. big fetches by slow readers
# --------------------------------------------------------------------------------------------

def class_big_fetch(ctx):
    res = ctx.res
    total = (48 if ctx.full else 24) * 1_000_000
    size = 16 * 1024
    b = ctx.start()
    create_topic(b.bootstrap, "bigfetch", 1)
    ctx.probe_topic = "bigfetch"
    count = total // size
    values = [b"%08d-" % i + os.urandom(size - 9) for i in range(count)]
    ctx.expect["bigfetch"] = {0: values}
    delivered = []
    errors = []

    def dr(err, msg):
        (errors if err else delivered).append(err or msg.offset())

    p = Producer(kafka_quiet({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 20,
                              "compression.type": "none", "batch.size": 1_000_000}))
    t = time.monotonic()
    for v in values:
        while True:
            try:
                p.produce("bigfetch", v, partition=0, on_delivery=dr)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(120)
    del p
    secs = time.monotonic() - t
    res.check(left == 0 and not errors and len(delivered) == count, "producer acks=all delivered everything",
              f"{len(delivered)}/{count} delivered, {len(errors)} errors, {left} left, "
              f"{count * size / 1e6:.1f} MB in {secs:.1f} s")
    if errors:
        raise RuntimeError(f"produce errors: {errors[:3]}")
    time.sleep(1.0)
    rss_before = b.rss()
    socks = []
    t0 = time.monotonic()
    for i in range(6):
        s = connect(b.port, 10, rcvbuf=4096)
        s.sendall(fetch_v4(200 + i, "bigfetch", 0, max_wait_ms=500, min_bytes=1,
                           max_bytes=2**31 - 1, partition_max_bytes=2**31 - 1))
        socks.append(s)
    mid = None
    while time.monotonic() - t0 < 10.0:
        if mid is None and time.monotonic() - t0 >= 5.0:
            mid = health_probe(b.port, "bigfetch")
        time.sleep(0.1)
    during = ctx.sampler.peak(since=t0)
    for s in socks:
        s.close()
    res.note("rss_before", fmt_mib(rss_before))
    res.note("rss_during_peak", fmt_mib(during))
    res.note("rss_growth", fmt_mib(None if during is None or rss_before is None else during - rss_before))
    res.headline = f"{count * size / 1e6:.0f} MB x 6 slow readers: RSS growth {res.numbers['rss_growth']}"
    res.check(mid is not None and mid[0], "health probe answered within 2 s while 6 slow readers hold fetches",
              mid[1] if mid else "not run")


# --------------------------------------------------------------------------------------------
# 6. group flood
# --------------------------------------------------------------------------------------------

def class_group_flood(ctx):
    res = ctx.res
    n = 210_000 if ctx.full else 20_000
    conns, window = 4, 500
    b = ctx.start()
    codes = collections.Counter()
    missing = []
    lock = threading.Lock()

    def flood(c):
        ids = list(range(c, n, conns))
        local = collections.Counter()
        try:
            with connect(b.port, 60) as s:
                for w in range(0, len(ids), window):
                    chunk = ids[w:w + window]
                    s.sendall(b"".join(join_group_v4(g, f"flood-{g:07d}") for g in chunk))
                    for g in chunk:
                        corr, body = read_response(s)
                        if corr != g:
                            raise ValueError(f"correlation id {corr}, expected {g}")
                        local[parse_join_group_v4(body)[1]] += 1
        except Exception as e:
            with lock:
                missing.append(f"connection {c}: {type(e).__name__}: {e}")
        with lock:
            codes.update(local)

    t = time.monotonic()
    threads = [threading.Thread(target=flood, args=(c,)) for c in range(conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    secs = time.monotonic() - t
    answered = sum(codes.values())
    res.check(answered == n and not missing, "every JoinGroup answered",
              f"{answered}/{n} in {secs:.1f} s over {conns} connections; codes "
              f"{ {err_name(k): v for k, v in codes.items()} }" + (f"; {missing[0]}" if missing else ""))
    res.note("joins", f"{n} in {secs:.1f} s")
    for label, wait in (("after", 0), ("after+5s", 5)):
        time.sleep(wait)
        rss = b.rss()
        t = time.monotonic()
        try:
            size, took = scrape_metrics(b.mport)
            time.sleep(0.15)  # one more RSS sample (not a speed assertion)
            during = ctx.sampler.peak(since=t)
            res.check(size <= 20_000_000 and took <= 2.0, f"GET /metrics {label} the flood: <= 20 MB, <= 2 s",
                      f"{size} bytes in {took * 1000:.0f} ms; RSS {fmt_mib(rss)} before, peak {fmt_mib(during)} during")
            res.note(f"metrics_{label}", f"{size} B in {took * 1000:.0f} ms, RSS {fmt_mib(rss)} before, "
                                         f"peak {fmt_mib(during)} during the scrape")
            if not res.headline:
                res.headline = f"{n} joins ({', '.join(f'{k}: {v}' for k, v in sorted(codes.items()))})"
            res.headline += f"; /metrics {label} {size / 1e6:.2f} MB {took * 1000:.0f} ms"
        except OSError as e:
            res.check(False, f"GET /metrics {label} the flood", f"{type(e).__name__}: {e}")


# --------------------------------------------------------------------------------------------
# 7. disk amplification
# --------------------------------------------------------------------------------------------

def allocated(path):
    """(total allocated bytes, files, dirs, [(bytes, path)] largest first)."""
    total = files = dirs = 0
    per = []
    for dirpath, dirnames, filenames in os.walk(path):
        st = os.lstat(dirpath)
        total += st.st_blocks * 512
        dirs += 1
        for f in filenames:
            fp = os.path.join(dirpath, f)
            try:
                st = os.lstat(fp)
            except FileNotFoundError:
                continue
            total += st.st_blocks * 512
            files += 1
            per.append((st.st_blocks * 512, os.path.relpath(fp, path)))
    per.sort(reverse=True)
    return total, files, dirs, per


def class_disk(ctx):
    res = ctx.res
    parts = 1000 if ctx.full else 64
    b = ctx.start()
    create_topic(b.bootstrap, "amp", parts)
    ctx.probe_topic = "amp"
    values = {p: [b"amp-%04d-" % p + os.urandom(1024 - 9)] for p in range(parts)}
    ctx.expect["amp"] = values
    delivered, errors = [], []
    pr = Producer(kafka_quiet({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5}))
    for p in range(parts):
        pr.produce("amp", values[p][0], partition=p,
                   on_delivery=lambda err, msg: (errors if err else delivered).append(err or msg.partition()))
        pr.poll(0)
    left = pr.flush(120)
    del pr
    res.check(left == 0 and not errors and len(delivered) == parts, "one record delivered to every partition",
              f"{len(delivered)}/{parts}, {len(errors)} errors")
    total, files, dirs, per = allocated(os.path.join(ctx.root, "data"))
    limit = parts * (MiB + 64 * 1024) + 16 * MiB
    res.note("partitions", parts)
    res.note("allocated", f"{total} bytes ({fmt_mib(total)}) in {files} files, {dirs} dirs")
    res.note("per_partition", f"{total / parts / 1024:.1f} KiB")
    res.headline = f"{parts} partitions: {total / parts / 1024:.1f} KiB allocated per partition"
    res.info("largest: " + ", ".join(f"{p} {s // 1024} KiB" for s, p in per[:4]))
    res.check(total <= limit, "allocated bytes <= partitions x (1 MiB + 64 KiB) + 16 MiB",
              f"{total} <= {limit}")
    tier = os.path.join(ctx.root, "data.tier")
    if os.path.isdir(tier):
        res.info(f"(outside data/) data.tier holds {allocated(tier)[0]} allocated bytes")


# --------------------------------------------------------------------------------------------

CLASSES = [
    (1, "poison batches", class_poison),
    (2, "long polls that disconnect", class_long_polls),
    (3, "trickled frames", class_trickle),
    (4, "topic-creation storm", class_storm),
    (5, "big fetches by slow readers", class_big_fetch),
    (6, "group flood", class_group_flood),
    (7, "disk amplification", class_disk),
]


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--full", action="store_true", help="full-size attacks")
    ap.add_argument("--only", default="", help="comma-separated class numbers")
    ap.add_argument("--keep", action="store_true", help="keep every class's temp root")
    args = ap.parse_args()
    binary = os.path.realpath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"not an executable: {binary}")
    only = {int(x) for x in args.only.split(",") if x.strip()}
    fds = raise_fd_limit()
    print(f"hostile suite: {binary} ({'FULL' if args.full else 'QUICK'}), fd limit {fds}", flush=True)
    t0 = time.monotonic()
    results = [run_class(num, title, fn, binary, args.full, args.keep)
               for num, title, fn in CLASSES if not only or num in only]
    total = time.monotonic() - t0
    print("\n" + "=" * 100)
    print(f"{'#':<3}{'class':<30}{'result':<8}{'time':>8}  {'RSS peak':>10} {'VmHWM':>10} {'SIGTERM':>9}  key numbers")
    for r in results:
        print(f"{r.num:<3}{r.title:<30}{'PASS' if r.ok else 'FAIL':<8}{r.elapsed:>7.1f}s  "
              f"{r.numbers.get('rss_peak', '-'):>10} {r.numbers.get('vmhwm', '-'):>10} "
              f"{r.numbers.get('sigterm_exit', '-'):>9}  {r.headline}")
    for r in results:
        for f in r.failures():
            print(f"  [{r.num}] FAIL {f}")
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)}/{len(results)} classes passed in {total:.1f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
