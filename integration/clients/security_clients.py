#!/usr/bin/env python3
"""confluent-kafka and kafka-python over secured listeners: each produces and consumes a topic of
its own over SASL_SSL with SCRAM-SHA-512 and over SSL with a client certificate (mTLS), and a
wrong password never gets a record through. Prints one PASS/FAIL line per case; exits non-zero
on any FAIL.

Usage: security_clients.py SASL_SSL_BOOTSTRAP SSL_BOOTSTRAP CA CERT KEY USER PASSWORD
"""
import sys
import time
import traceback
import uuid

SASL_BOOT, SSL_BOOT, CA, CERT, KEY, USER, PASSWORD = sys.argv[1:8]
N = 200
RESULTS = []


def case(name):
    def wrap(f):
        try:
            f()
            RESULTS.append(("PASS", name, ""))
        except Exception as e:  # noqa: BLE001 - a case fails on anything
            traceback.print_exc(file=sys.stderr)
            RESULTS.append(("FAIL", name, f"{type(e).__name__}: {e}"))
        return f

    return wrap


def ck_conf(mode, password=PASSWORD):
    c = {"ssl.ca.location": CA}
    if mode == "sasl":
        c.update(
            {
                "bootstrap.servers": SASL_BOOT,
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": USER,
                "sasl.password": password,
            }
        )
    else:
        c.update(
            {
                "bootstrap.servers": SSL_BOOT,
                "security.protocol": "SSL",
                "ssl.certificate.location": CERT,
                "ssl.key.location": KEY,
            }
        )
    return c


def ck_roundtrip(mode):
    from confluent_kafka import Consumer, Producer

    topic = f"ck-{mode}-{uuid.uuid4().hex[:8]}"
    p = Producer(ck_conf(mode))
    errors = []
    for i in range(N):
        p.produce(topic, f"{mode}-{i}".encode(), on_delivery=lambda e, m: e and errors.append(e))
    left = p.flush(30)
    assert left == 0 and not errors, f"{left} undelivered, errors {errors[:3]}"
    c = Consumer({**ck_conf(mode), "group.id": topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = set()
    deadline = time.time() + 30
    while len(got) < N and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.add(m.value().decode())
    c.close()
    assert got == {f"{mode}-{i}" for i in range(N)}, f"consumed {len(got)} of {N}"


@case("confluent-kafka SASL_SSL SCRAM-SHA-512 produce+consume")
def _():
    ck_roundtrip("sasl")


@case("confluent-kafka SSL client certificate produce+consume")
def _():
    ck_roundtrip("mtls")


@case("confluent-kafka wrong password is refused")
def _():
    from confluent_kafka import KafkaError, Producer

    seen = []
    conf = {**ck_conf("sasl", "not-" + PASSWORD), "error_cb": seen.append, "message.timeout.ms": 5000}
    p = Producer(conf)
    delivered = []
    p.produce("ck-denied", b"x", on_delivery=lambda e, m: delivered.append(e is None))
    p.flush(10)
    assert delivered == [False], f"delivery reports {delivered}"
    codes = {e.code() for e in seen}
    assert KafkaError._AUTHENTICATION in codes, f"errors seen: {seen[:3]}"


def kp_conf(mode, password=PASSWORD):
    c = {"ssl_cafile": CA, "ssl_check_hostname": True}
    if mode == "sasl":
        c.update(
            {
                "bootstrap_servers": SASL_BOOT,
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": USER,
                "sasl_plain_password": password,
            }
        )
    else:
        c.update(
            {
                "bootstrap_servers": SSL_BOOT,
                "security_protocol": "SSL",
                "ssl_certfile": CERT,
                "ssl_keyfile": KEY,
            }
        )
    return c


def kp_roundtrip(mode):
    from kafka import KafkaConsumer, KafkaProducer

    topic = f"kp-{mode}-{uuid.uuid4().hex[:8]}"
    p = KafkaProducer(acks="all", **kp_conf(mode))
    futures = [p.send(topic, f"{mode}-{i}".encode()) for i in range(N)]
    for f in futures:
        f.get(timeout=30)
    p.close()
    c = KafkaConsumer(
        topic, group_id=topic, auto_offset_reset="earliest", consumer_timeout_ms=15000, **kp_conf(mode)
    )
    got = set()
    for m in c:
        got.add(m.value.decode())
        if len(got) == N:
            break
    c.close()
    assert got == {f"{mode}-{i}" for i in range(N)}, f"consumed {len(got)} of {N}"


@case("kafka-python SASL_SSL SCRAM-SHA-512 produce+consume")
def _():
    kp_roundtrip("sasl")


@case("kafka-python SSL client certificate produce+consume")
def _():
    kp_roundtrip("mtls")


@case("kafka-python wrong password is refused")
def _():
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        p = KafkaProducer(max_block_ms=5000, **kp_conf("sasl", "not-" + PASSWORD))
        p.send("kp-denied", b"x").get(timeout=10)
    except KafkaError as e:
        text = f"{type(e).__name__} {e}"
        assert "Authentication" in text or "NoBrokersAvailable" in text or "Timeout" in text, text
        return
    raise AssertionError("a producer with a wrong password delivered")


for status, name, why in RESULTS:
    print(f"{status} {name}" + (f": {why}" if why else ""))
sys.exit(0 if all(s == "PASS" for s, _, _ in RESULTS) else 1)
