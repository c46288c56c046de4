#!/usr/bin/env python3
"""Python Kafka clients against a running broker, each with its default configuration unless a
case says otherwise. Prints one line per (client, capability): PASS, FAIL (with the reason) or
N/A (the client cannot do it), and exits non-zero on any FAIL.

Usage: python_clients.py BOOTSTRAP [client ...]     clients: confluent-kafka kafka-python aiokafka
"""
import asyncio
import os
import subprocess
import sys
import time
import traceback
import uuid

BOOT = sys.argv[1]
WANT = sys.argv[2:] or ["confluent-kafka", "kafka-python", "aiokafka"]
RESULTS = []
# set by integration/clients.sh: a broker behind the fault proxy, the proxy's log of lost
# produce responses, and a command that SIGKILLs and restarts the broker at BOOT
FAULTY = os.environ.get("FAULTY_BOOTSTRAP", "")
FAULT_LOG = os.environ.get("FAULT_LOG", "")
RESTART = os.environ.get("RESTART_BROKER", "")
# the idempotence cells send this many rounds of records, each round flushed: enough produce
# requests for the proxy to lose several responses
ROUNDS, PER_ROUND = 10, 50
IDEMPOTENT_TOTAL = ROUNDS * PER_ROUND
# the broker's Prometheus endpoint (set by integration/clients.sh)
METRICS = os.environ.get("TIERCEL_METRICS", "")


def expect_faults(client_id):
    """Fails unless the fault proxy threw away at least one produce response of `client_id`."""
    if not FAULT_LOG:
        raise AssertionError("FAULT_LOG is not set: run through integration/clients.sh")
    with open(FAULT_LOG) as f:
        lost = sum(1 for line in f if line.split()[1:2] == [client_id])
    if lost == 0:
        raise AssertionError(f"the fault proxy lost no produce response of {client_id}")


def restart_broker():
    """SIGKILLs the broker at BOOT and waits until it listens again."""
    if not RESTART:
        raise AssertionError("RESTART_BROKER is not set: run through integration/clients.sh")
    subprocess.run([RESTART], check=True, timeout=60, stdout=subprocess.DEVNULL)


def need_faulty():
    if not FAULTY:
        raise AssertionError("FAULTY_BOOTSTRAP is not set: run through integration/clients.sh")
    return FAULTY


def record(client, capability, fn):
    try:
        out = fn()
        if asyncio.iscoroutine(out):
            out = asyncio.run(out)
        RESULTS.append((client, capability, "N/A" if out == "n/a" else "PASS", ""))
    except Exception as e:  # noqa: BLE001 - every failure is reported, none is fatal
        detail = f"{type(e).__name__}: {e}".replace("\n", " ")[:200]
        RESULTS.append((client, capability, "FAIL", detail))
        traceback.print_exc(file=sys.stderr)


def incremental_fetches():
    """Fetches the broker served in an incremental fetch session (KIP-227), from /metrics."""
    import urllib.request
    body = urllib.request.urlopen(METRICS, timeout=10).read().decode()
    for line in body.splitlines():
        if line.startswith('tiercel_fetch_session_requests_total{') and 'kind="incremental"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def session_rounds(partitions, rounds):
    """What the fetch-session cells produce: round r writes to the partitions i with
    (i + r) % 3 == 0, so each poll finds news in a third of the session's partitions."""
    want = {}
    for r in range(rounds):
        for i in range(partitions):
            if (i + r) % 3 == 0:
                want.setdefault(i, []).append(r)
    return want


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def split(shares):
    """Both members hold some of the four partitions, none twice, all four between them."""
    return all(shares) and not shares[0] & shares[1] and len(shares[0] | shares[1]) == 4


def expect(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


def messages(n, tag):
    return [(f"k{i}".encode(), f"{tag}-{i}".encode(), [("h", f"{i}".encode())]) for i in range(n)]


# ---------------------------------------------------------------- confluent-kafka (librdkafka)
def confluent():
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOT})

    def create(topic, partitions=1, boot=BOOT):
        a = admin if boot == BOOT else AdminClient({"bootstrap.servers": boot})
        for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
            f.result(10)

    def consume_all(topic, n, group=None, extra=None, boot=BOOT):
        conf = {"bootstrap.servers": boot, "group.id": group or name("g"),
                "auto.offset.reset": "earliest"}
        conf.update(extra or {})
        c = Consumer(conf)
        c.subscribe([topic])
        out, deadline = [], time.time() + 30
        while len(out) < n and time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out.append(m)
        return c, out

    def produce_consume(codec):
        def run():
            topic = name(f"ck-{codec}")
            create(topic)
            p = Producer({"bootstrap.servers": BOOT, "compression.type": codec})
            for k, v, h in messages(200, codec):
                p.produce(topic, key=k, value=v, headers=h)
            expect(p.flush(30), 0, "undelivered")
            c, got = consume_all(topic, 200)
            c.close()
            expect([(m.key(), m.value(), m.headers()) for m in got],
                   [(k, v, h) for k, v, h in messages(200, codec)], "records")
        return run

    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        record("confluent-kafka", f"produce/consume {codec}", produce_consume(codec))

    def group():
        topic = name("ck-group")
        create(topic, 4)
        p = Producer({"bootstrap.servers": BOOT})
        for i in range(40):
            p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        p.flush(30)
        g = name("grp")
        conf = {"bootstrap.servers": BOOT, "group.id": g, "auto.offset.reset": "earliest",
                "enable.auto.commit": False}
        a, b = Consumer(conf), Consumer(conf)
        a.subscribe([topic])
        b.subscribe([topic])
        seen, deadline = {}, time.time() + 40
        while len(seen) < 40 and time.time() < deadline:
            for c in (a, b):
                m = c.poll(0.2)
                if m is not None and not m.error():
                    seen[(m.partition(), m.offset())] = c
                    c.commit(m, asynchronous=False)
        expect(len(seen), 40, "records consumed by the group")
        # both members hold a share of the four partitions
        # until the rebalance that brought the second member in is over
        shares = [set(), set()]
        while time.time() < deadline and not split(shares):
            for c in (a, b):
                c.poll(0.2)
            shares = [{tp.partition for tp in c.assignment()} for c in (a, b)]
        if not split(shares):
            raise AssertionError(f"the two members' assignments: {shares}")
        a.close()
        b.close()
        # a restarted member resumes from the commits: nothing new to read, then new records
        p.produce(topic, key=b"late", value=b"late", partition=0)
        p.flush(30)
        c = Consumer(conf)
        c.subscribe([topic])
        got, deadline = [], time.time() + 30
        while time.time() < deadline and not got:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
        c.close()
        expect(got, [b"late"], "a new member resumes from the commits")

    record("confluent-kafka", "consumer group (2 members share, commits, resume)", group)

    def broker_restart():
        topic, g = name("ck-restart"), name("grp")
        create(topic)
        p = Producer({"bootstrap.servers": BOOT, "acks": "all"})
        for i in range(10):
            p.produce(topic, value=f"before-{i}".encode())
        expect(p.flush(30), 0, "undelivered")
        c, got = consume_all(topic, 10, group=g, extra={"enable.auto.commit": False})
        c.commit(got[-1], asynchronous=False)
        c.close()
        restart_broker()
        # the same producer reconnects on its own; the group's commit survived the kill
        for i in range(10):
            p.produce(topic, value=f"after-{i}".encode())
        expect(p.flush(30), 0, "undelivered after the restart")
        c, got = consume_all(topic, 10, group=g)
        c.close()
        expect([m.value() for m in got], [f"after-{i}".encode() for i in range(10)],
               "the group resumes at its commit")
        c, got = consume_all(topic, 20)
        c.close()
        expect([m.value() for m in got],
               [f"before-{i}".encode() for i in range(10)]
               + [f"after-{i}".encode() for i in range(10)], "the whole log")

    record("confluent-kafka", "broker restart (kill -9)", broker_restart)

    def admin_ops():
        topic = name("ck-admin")
        create(topic, 3)
        md = admin.list_topics(topic, timeout=10)
        expect(len(md.topics[topic].partitions), 3, "partitions")
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        cfg = admin.describe_configs([res])[res].result(10)
        expect(cfg["cleanup.policy"].value, "delete", "cleanup.policy")
        res = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "12345"})
        admin.alter_configs([res])[res].result(10)
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        expect(admin.describe_configs([res])[res].result(10)["retention.ms"].value, "12345",
               "altered retention.ms")
        for f in admin.delete_topics([topic]).values():
            f.result(10)
        deadline = time.time() + 10
        while topic in admin.list_topics(timeout=10).topics and time.time() < deadline:
            time.sleep(0.2)
        if topic in admin.list_topics(timeout=10).topics:
            raise AssertionError("topic still listed after delete")

    record("confluent-kafka", "admin create/describe/alter/delete", admin_ops)

    def idempotent():
        boot, cid, topic = need_faulty(), "idem-confluent-kafka", name("ck-idem")
        create(topic, boot=boot)
        p = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "client.id": cid})
        errors = []
        for r in range(ROUNDS):
            for i in range(PER_ROUND):
                p.produce(topic, value=f"{r * PER_ROUND + i}".encode(),
                          on_delivery=lambda e, _m: e and errors.append(e))
            expect(p.flush(30), 0, "undelivered")
        expect(errors, [], "delivery errors")
        expect_faults(cid)
        c, got = consume_all(topic, IDEMPOTENT_TOTAL, boot=boot)
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), 10)
        c.close()
        expect([int(m.value()) for m in got], list(range(IDEMPOTENT_TOTAL)),
               "exactly once, in order")
        expect(high, IDEMPOTENT_TOTAL, "records in the log (a retried batch stored twice adds more)")

    record("confluent-kafka", "idempotent producer", idempotent)
    def transactions():
        topic, src, group = name("ck-txn"), name("ck-txn-in"), name("g")
        create(topic)
        create(src)
        c = Consumer({"bootstrap.servers": BOOT, "group.id": group})
        p = Producer({"bootstrap.servers": BOOT, "transactional.id": name("ck-tx")})
        p.init_transactions(30)
        p.begin_transaction()
        for i in range(5):
            p.produce(topic, value=f"c-{i}".encode())
        p.send_offsets_to_transaction([TopicPartition(src, 0, 5)],
                                      c.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        p.begin_transaction()
        for i in range(5):
            p.produce(topic, value=f"a-{i}".encode())
        p.flush(30)
        p.abort_transaction(30)
        # a plain record after the aborted transaction: a reader that reaches it has read past
        # everything the transactions wrote, so what it did not see was really filtered
        plain = Producer({"bootstrap.servers": BOOT})
        plain.produce(topic, value=b"end")
        expect(plain.flush(30), 0, "undelivered")
        rc, got = consume_all(topic, 6, extra={"isolation.level": "read_committed"})
        rc.close()
        expect([x.value() for x in got], [f"c-{i}".encode() for i in range(5)] + [b"end"],
               "read_committed: the committed records, then the plain one")
        ru, got = consume_all(topic, 11, extra={"isolation.level": "read_uncommitted"})
        ru.close()
        expect([x.value() for x in got][-1:], [b"end"], "read_uncommitted reads up to the end")
        expect(len(got), 11, "read_uncommitted sees the aborted records")
        expect(c.committed([TopicPartition(src, 0)], 10)[0].offset, 5, "offset committed")
        c.close()

    record("confluent-kafka", "transactions", transactions)

    def telemetry():
        """Client telemetry (KIP-714) against a broker asking for org.apache.kafka.* metrics
        every second: the producer's and the consumer's show on its /metrics by client id."""
        import urllib.request
        tb, tm = os.environ.get("TELEMETRY_BOOTSTRAP", ""), os.environ.get("TELEMETRY_METRICS", "")
        if not tb or not tm:
            return "n/a"
        topic, pid, cid = name("ck-telemetry"), name("ck-tel-p"), name("ck-tel-c")
        create(topic, boot=tb)
        p = Producer({"bootstrap.servers": tb, "client.id": pid})
        for i in range(10):
            p.produce(topic, value=f"v{i}".encode())
        expect(p.flush(30), 0, "undelivered")
        c = Consumer({"bootstrap.servers": tb, "client.id": cid, "group.id": name("g"),
                      "auto.offset.reset": "earliest"})
        c.subscribe([topic])

        def seen(prefix, client_id):
            body = urllib.request.urlopen(tm, timeout=10).read().decode()
            return any(line.startswith(prefix) and f'client_id="{client_id}"' in line
                       for line in body.splitlines())

        read, seen_p, seen_c = 0, False, False
        deadline = time.time() + 30
        while time.time() < deadline and not (seen_p and seen_c and read >= 10):
            m = c.poll(0.3)
            if m is not None and not m.error():
                read += 1
            p.poll(0)
            seen_p = seen("tiercel_client_org_apache_kafka_producer", pid)
            seen_c = seen("tiercel_client_org_apache_kafka_consumer", cid)
        c.close()
        expect(read, 10, "records consumed")
        expect(seen_p, True, "the producer's metrics on the broker's /metrics")
        expect(seen_c, True, "the consumer's metrics on the broker's /metrics")

    record("confluent-kafka", "client telemetry (KIP-714): metrics on the broker's /metrics", telemetry)


# ---------------------------------------------------------------- kafka-python
def kafka_python():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOT)

    def create(topic, partitions=1, boot=BOOT):
        if boot == BOOT:
            admin.create_topics([NewTopic(topic, partitions, 1)])
            return
        a = KafkaAdminClient(bootstrap_servers=boot)
        a.create_topics([NewTopic(topic, partitions, 1)])
        a.close()

    def consume(topic, n, boot=BOOT, **kw):
        kw.setdefault("consumer_timeout_ms", 10000)
        c = KafkaConsumer(topic, bootstrap_servers=boot, auto_offset_reset="earliest", **kw)
        out = []
        for m in c:
            out.append(m)
            if len(out) >= n:
                break
        return c, out

    def produce_consume(codec):
        def run():
            topic = name(f"kp-{codec}")
            create(topic)
            p = KafkaProducer(bootstrap_servers=BOOT,
                              compression_type=None if codec == "none" else codec)
            for k, v, h in messages(200, codec):
                p.send(topic, key=k, value=v, headers=h)
            p.flush(30)
            p.close()
            c, got = consume(topic, 200, group_id=name("g"))
            c.close()
            expect([(m.key, m.value, m.headers) for m in got],
                   [(k, v, h) for k, v, h in messages(200, codec)], "records")
        return run

    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        record("kafka-python", f"produce/consume {codec}", produce_consume(codec))

    def group():
        topic = name("kp-group")
        create(topic, 4)
        p = KafkaProducer(bootstrap_servers=BOOT)
        for i in range(40):
            p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        p.flush(30)
        g = name("grp")
        kw = dict(bootstrap_servers=BOOT, group_id=g, auto_offset_reset="earliest",
                  enable_auto_commit=False)
        # each member polls in its own thread: a kafka-python poll blocks while it rejoins
        import threading
        seen, lock, deadline = set(), threading.Lock(), time.time() + 60
        shares = [set(), set()]  # each member's assignment as it last saw it
        done = []  # non-empty once every record was read and the members split the partitions

        def member(i):
            c = KafkaConsumer(topic, **kw)
            while time.time() < deadline:
                with lock:
                    if done:
                        break
                batch = c.poll(timeout_ms=200)
                with lock:
                    if done:  # the other member's leaving may have moved partitions here
                        break
                    shares[i] = {tp.partition for tp in c.assignment()}
                    for tp, ms in batch.items():
                        seen.update((tp.partition, m.offset) for m in ms)
                    if len(seen) >= 40 and split(shares):
                        done.append(True)
                if batch:
                    c.commit()
            c.close()

        threads = [threading.Thread(target=member, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expect(len(seen), 40, "records consumed by the group")
        if not split(shares):
            raise AssertionError(f"the two members' assignments: {shares}")
        p.send(topic, key=b"late", value=b"late", partition=0)
        p.flush(30)
        c = KafkaConsumer(topic, **kw)
        got, deadline = [], time.time() + 30
        while not got and time.time() < deadline:
            for tp, ms in c.poll(timeout_ms=500).items():
                got.extend(m.value for m in ms)
        c.close()
        expect(got, [b"late"], "a new member resumes from the commits")

    record("kafka-python", "consumer group (2 members share, commits, resume)", group)

    def broker_restart():
        topic, g = name("kp-restart"), name("grp")
        create(topic)
        p = KafkaProducer(bootstrap_servers=BOOT, acks="all")
        for f in [p.send(topic, value=f"before-{i}".encode()) for i in range(10)]:
            f.get(timeout=30)
        c, got = consume(topic, 10, group_id=g, enable_auto_commit=False)
        expect(len(got), 10, "records before the restart")
        c.commit()
        c.close()
        restart_broker()
        # the same producer reconnects on its own; the group's commit survived the kill
        for f in [p.send(topic, value=f"after-{i}".encode()) for i in range(10)]:
            f.get(timeout=30)
        p.close()
        c, got = consume(topic, 10, group_id=g)
        c.close()
        expect([m.value for m in got], [f"after-{i}".encode() for i in range(10)],
               "the group resumes at its commit")
        c, got = consume(topic, 20, group_id=name("g"))
        c.close()
        expect([m.value for m in got],
               [f"before-{i}".encode() for i in range(10)]
               + [f"after-{i}".encode() for i in range(10)], "the whole log")

    record("kafka-python", "broker restart (kill -9)", broker_restart)

    def admin_ops():
        topic = name("kp-admin")
        create(topic, 3)
        expect(len(admin.describe_topics([topic])[0]["partitions"]), 3, "partitions")
        # kafka-python 3 shows only modified configs unless asked for all
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                     config_filter="all")
        text = repr(res)
        if "cleanup.policy" not in text:
            raise AssertionError(f"describe_configs: {text[:200]}")
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={"retention.ms": "12345"})])
        res = repr(admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]))
        if "12345" not in res:
            raise AssertionError("altered retention.ms not described")
        admin.delete_topics([topic])
        deadline = time.time() + 10
        while topic in admin.list_topics() and time.time() < deadline:
            time.sleep(0.2)
        if topic in admin.list_topics():
            raise AssertionError("topic still listed after delete")

    record("kafka-python", "admin create/describe/alter/delete", admin_ops)

    def idempotent():
        boot, cid, topic = need_faulty(), "idem-kafka-python", name("kp-idem")
        create(topic, boot=boot)
        p = KafkaProducer(bootstrap_servers=boot, enable_idempotence=True, acks="all",
                          client_id=cid)
        for r in range(ROUNDS):
            sent = [p.send(topic, value=f"{r * PER_ROUND + i}".encode()) for i in range(PER_ROUND)]
            p.flush(30)
            for f in sent:
                f.get(timeout=30)
        p.close()
        expect_faults(cid)
        c, got = consume(topic, IDEMPOTENT_TOTAL, boot=boot, group_id=name("g"))
        high = c.end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]
        c.close()
        expect([int(m.value) for m in got], list(range(IDEMPOTENT_TOTAL)),
               "exactly once, in order")
        expect(high, IDEMPOTENT_TOTAL, "records in the log (a retried batch stored twice adds more)")

    record("kafka-python", "idempotent producer", idempotent)
    def transactions():
        from kafka.structs import OffsetAndMetadata
        topic, src, group = name("kp-txn"), name("kp-txn-in"), name("g")
        create(topic)
        create(src)
        p = KafkaProducer(bootstrap_servers=BOOT, transactional_id=name("kp-tx"))
        p.init_transactions()
        p.begin_transaction()
        for i in range(5):
            p.send(topic, value=f"c-{i}".encode())
        p.send_offsets_to_transaction({TopicPartition(src, 0): OffsetAndMetadata(5, "", -1)},
                                      group)
        p.commit_transaction()
        p.begin_transaction()
        for i in range(5):
            p.send(topic, value=f"a-{i}".encode())
        p.flush()
        p.abort_transaction()
        p.close()
        # a plain record after the aborted transaction: a reader that reaches it has read past
        # everything the transactions wrote, so what it did not see was really filtered
        plain = KafkaProducer(bootstrap_servers=BOOT)
        plain.send(topic, value=b"end").get(timeout=30)
        plain.close()
        c, got = consume(topic, 6, group_id=None, isolation_level="read_committed")
        c.close()
        expect([m.value for m in got], [f"c-{i}".encode() for i in range(5)] + [b"end"],
               "read_committed: the committed records, then the plain one")
        c, got = consume(topic, 11, group_id=name("g"), isolation_level="read_uncommitted")
        c.close()
        expect([m.value for m in got][-1:], [b"end"], "read_uncommitted reads up to the end")
        expect(len(got), 11, "read_uncommitted sees the aborted records")
        c = KafkaConsumer(bootstrap_servers=BOOT, group_id=group)
        expect(c.committed(TopicPartition(src, 0)), 5, "offset committed")
        c.close()

    record("kafka-python", "transactions", transactions)

    def fetch_sessions():
        # KIP-227: a consumer of 24 partitions polls while records arrive in a few of them at a
        # time; it reads through an incremental fetch session and gets every record, in order
        if not METRICS:
            return "n/a"
        topic, parts, rounds = name("kp-sessions"), 24, 6
        create(topic, parts)
        before = incremental_fetches()
        c = KafkaConsumer(bootstrap_servers=BOOT, auto_offset_reset="earliest", group_id=None,
                          fetch_max_wait_ms=100)
        c.assign([TopicPartition(topic, i) for i in range(parts)])
        c.poll(timeout_ms=500)
        p = KafkaProducer(bootstrap_servers=BOOT)
        want, got = session_rounds(parts, rounds), {}
        for r in range(rounds):
            for i in range(parts):
                if (i + r) % 3 == 0:
                    p.send(topic, value=str(r).encode(), partition=i)
            p.flush(30)
            sent = sum(len([x for x in v if x <= r]) for v in want.values())
            deadline = time.time() + 15
            while sum(len(v) for v in got.values()) < sent and time.time() < deadline:
                for tp, msgs in c.poll(timeout_ms=200).items():
                    got.setdefault(tp.partition, []).extend(int(m.value) for m in msgs)
        p.close()
        c.close()
        expect(got, want, "records by partition")
        used = incremental_fetches() - before
        if used < rounds:
            raise AssertionError(f"{used:.0f} incremental fetches, expected at least {rounds}")

    record("kafka-python", "fetch sessions (KIP-227)", fetch_sessions)


# ---------------------------------------------------------------- aiokafka
def aio():
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def create(topic, partitions=1, boot=BOOT):
        a = AIOKafkaAdminClient(bootstrap_servers=boot)
        await a.start()
        try:
            await a.create_topics([NewTopic(topic, partitions, 1)])
        finally:
            await a.close()

    async def consume(topic, n, group, boot=BOOT, end=None):
        """Up to `n` records of `topic`; with `end` a list, the partition 0 log end goes in it."""
        c = AIOKafkaConsumer(topic, bootstrap_servers=boot, group_id=group,
                             auto_offset_reset="earliest")
        await c.start()
        out = []
        try:
            deadline = time.time() + 30
            while len(out) < n and time.time() < deadline:
                batch = await c.getmany(timeout_ms=500)
                for ms in batch.values():
                    out.extend(ms)
            if end is not None:
                from aiokafka.structs import TopicPartition
                tp = TopicPartition(topic, 0)
                end.append((await c.end_offsets([tp]))[tp])
        finally:
            await c.stop()
        return out

    def produce_consume(codec):
        async def run():
            topic = name(f"ak-{codec}")
            await create(topic)
            p = AIOKafkaProducer(bootstrap_servers=BOOT,
                                 compression_type=None if codec == "none" else codec)
            await p.start()
            try:
                for k, v, h in messages(200, codec):
                    await p.send(topic, key=k, value=v, headers=h)
                await p.flush()
            finally:
                await p.stop()
            got = await consume(topic, 200, name("g"))
            expect([(m.key, m.value, list(m.headers)) for m in got],
                   [(k, v, h) for k, v, h in messages(200, codec)], "records")
        return run

    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        record("aiokafka", f"produce/consume {codec}", produce_consume(codec))

    async def group():
        topic = name("ak-group")
        await create(topic, 4)
        p = AIOKafkaProducer(bootstrap_servers=BOOT)
        await p.start()
        for i in range(40):
            await p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        await p.flush()
        g = name("grp")
        kw = dict(bootstrap_servers=BOOT, group_id=g, auto_offset_reset="earliest",
                  enable_auto_commit=False)
        a, b = AIOKafkaConsumer(topic, **kw), AIOKafkaConsumer(topic, **kw)
        await a.start()
        await b.start()
        seen, deadline = set(), time.time() + 60
        shares = [set(), set()]
        while (len(seen) < 40 or not split(shares)) and time.time() < deadline:
            for i, c in enumerate((a, b)):
                batch = await c.getmany(timeout_ms=200)
                shares[i] = {tp.partition for tp in c.assignment()}
                for tp, ms in batch.items():
                    for m in ms:
                        seen.add((tp.partition, m.offset))
                if batch:
                    await c.commit()
        await a.stop()
        await b.stop()
        expect(len(seen), 40, "records consumed by the group")
        if not split(shares):
            raise AssertionError(f"the two members' assignments: {shares}")
        await p.send_and_wait(topic, key=b"late", value=b"late", partition=0)
        await p.stop()
        c = AIOKafkaConsumer(topic, **kw)
        await c.start()
        got, deadline = [], time.time() + 30
        while not got and time.time() < deadline:
            for ms in (await c.getmany(timeout_ms=500)).values():
                got.extend(m.value for m in ms)
        await c.stop()
        expect(got, [b"late"], "a new member resumes from the commits")

    record("aiokafka", "consumer group (2 members share, commits, resume)", group)

    async def broker_restart():
        topic, g = name("ak-restart"), name("grp")
        await create(topic)
        p = AIOKafkaProducer(bootstrap_servers=BOOT, acks="all")
        await p.start()
        try:
            for i in range(10):
                await p.send_and_wait(topic, value=f"before-{i}".encode())
            c = AIOKafkaConsumer(topic, bootstrap_servers=BOOT, group_id=g,
                                 auto_offset_reset="earliest", enable_auto_commit=False)
            await c.start()
            got, deadline = [], time.time() + 30
            while len(got) < 10 and time.time() < deadline:
                for ms in (await c.getmany(timeout_ms=500)).values():
                    got.extend(ms)
            expect(len(got), 10, "records before the restart")
            await c.commit()
            await c.stop()
            await asyncio.to_thread(restart_broker)
            # the same producer reconnects on its own; the group's commit survived the kill
            for i in range(10):
                await p.send_and_wait(topic, value=f"after-{i}".encode())
        finally:
            await p.stop()
        got = await consume(topic, 10, g)
        expect([m.value for m in got], [f"after-{i}".encode() for i in range(10)],
               "the group resumes at its commit")
        got = await consume(topic, 20, name("g"))
        expect([m.value for m in got],
               [f"before-{i}".encode() for i in range(10)]
               + [f"after-{i}".encode() for i in range(10)], "the whole log")

    record("aiokafka", "broker restart (kill -9)", broker_restart)

    async def admin_ops():
        topic = name("ak-admin")
        a = AIOKafkaAdminClient(bootstrap_servers=BOOT)
        await a.start()
        try:
            await a.create_topics([NewTopic(topic, 3, 1)])
            d = await a.describe_topics([topic])
            expect(len(d[0]["partitions"]), 3, "partitions")
            res = repr(await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]))
            if "cleanup.policy" not in res:
                raise AssertionError(f"describe_configs: {res[:200]}")
            await a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"retention.ms": "12345"})])
            res = repr(await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]))
            if "12345" not in res:
                raise AssertionError("altered retention.ms not described")
            await a.delete_topics([topic])
            deadline = time.time() + 10
            while topic in await a.list_topics() and time.time() < deadline:
                await asyncio.sleep(0.2)
            if topic in await a.list_topics():
                raise AssertionError("topic still listed after delete")
        finally:
            await a.close()

    record("aiokafka", "admin create/describe/alter/delete", admin_ops)

    async def idempotent():
        boot, cid, topic = need_faulty(), "idem-aiokafka", name("ak-idem")
        await create(topic, boot=boot)
        p = AIOKafkaProducer(bootstrap_servers=boot, enable_idempotence=True, client_id=cid)
        await p.start()
        try:
            for r in range(ROUNDS):
                sent = [await p.send(topic, value=f"{r * PER_ROUND + i}".encode())
                        for i in range(PER_ROUND)]
                await p.flush()
                for f in sent:
                    await f
        finally:
            await p.stop()
        expect_faults(cid)
        end = []
        got = await consume(topic, IDEMPOTENT_TOTAL, name("g"), boot=boot, end=end)
        expect([int(m.value) for m in got], list(range(IDEMPOTENT_TOTAL)),
               "exactly once, in order")
        expect(end, [IDEMPOTENT_TOTAL], "records in the log (a retried batch stored twice adds more)")

    record("aiokafka", "idempotent producer", idempotent)
    async def transactions():
        from aiokafka.structs import TopicPartition
        topic, src, group = name("ak-txn"), name("ak-txn-in"), name("g")
        await create(topic)
        await create(src)
        p = AIOKafkaProducer(bootstrap_servers=BOOT, transactional_id=name("ak-tx"))
        await p.start()
        try:
            async with p.transaction():
                for i in range(5):
                    await p.send(topic, value=f"c-{i}".encode())
                await p.send_offsets_to_transaction({TopicPartition(src, 0): 5}, group)
            await p.begin_transaction()
            for i in range(5):
                await p.send_and_wait(topic, value=f"a-{i}".encode())
            await p.abort_transaction()
            # a plain record after the aborted transaction: a reader that reaches it has read
            # past everything the transactions wrote, so what it did not see was filtered
        finally:
            await p.stop()
        plain = AIOKafkaProducer(bootstrap_servers=BOOT)
        await plain.start()
        try:
            await plain.send_and_wait(topic, value=b"end")
        finally:
            await plain.stop()

        async def read(isolation, n, wait):
            c = AIOKafkaConsumer(topic, bootstrap_servers=BOOT, group_id=name("g"),
                                 auto_offset_reset="earliest", isolation_level=isolation)
            await c.start()
            out = []
            try:
                deadline = time.time() + wait
                while time.time() < deadline and len(out) < n:
                    for ms in (await c.getmany(timeout_ms=300)).values():
                        out.extend(ms)
            finally:
                await c.stop()
            return out

        got = await read("read_committed", 6, 30)
        expect([m.value for m in got], [f"c-{i}".encode() for i in range(5)] + [b"end"],
               "read_committed: the committed records, then the plain one")
        got = await read("read_uncommitted", 11, 30)
        expect([m.value for m in got][-1:], [b"end"], "read_uncommitted reads up to the end")
        expect(len(got), 11, "read_uncommitted sees the aborted records")
        c = AIOKafkaConsumer(bootstrap_servers=BOOT, group_id=group)
        await c.start()
        try:
            expect(await c.committed(TopicPartition(src, 0)), 5, "offset committed")
        finally:
            await c.stop()

    record("aiokafka", "transactions", transactions)


SUITES = {"confluent-kafka": confluent, "kafka-python": kafka_python, "aiokafka": aio}
for client in WANT:
    try:
        SUITES[client]()
    except Exception as e:  # the client could not even be imported or set up
        RESULTS.append((client, "setup", "FAIL", f"{type(e).__name__}: {e}"[:200]))
        traceback.print_exc(file=sys.stderr)

for client, cap, status, detail in RESULTS:
    print(f"{status:4} {client:16} {cap}" + (f"  -- {detail}" if detail else ""))
sys.exit(1 if any(r[2] == "FAIL" for r in RESULTS) else 0)
