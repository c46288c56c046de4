"""A confluent-kafka (librdkafka) producer that tries to write 10 MB/s over SASL_SSL for a
while, as a user with a producer_byte_rate quota: prints the rate its records were acknowledged
at after the first seconds (the burst and the client's start left out) and the largest and mean
throttle time the client itself reports in its statistics (`brokers.*.throttle`).

Usage: quota_probe.py SASL_BOOT CA USER PASSWORD TOPIC SECONDS
Prints: rate_bytes_per_s=<n> throttle_max_ms=<n> throttle_avg_ms=<n> acked=<n>
"""
import json
import sys
import time

from confluent_kafka import Producer

BOOT, CA, USER, PASSWORD, TOPIC, SECONDS = sys.argv[1:7]
SECONDS = float(SECONDS)
TRY_RATE = 10 * 1024 * 1024  # bytes per second attempted
VALUE = b"q" * (64 * 1024)
WARMUP = 5.0  # seconds left out of the measured rate

throttle = {"max": 0, "avg": 0}


def stats(raw):
    s = json.loads(raw)
    for b in s.get("brokers", {}).values():
        t = b.get("throttle", {})
        throttle["max"] = max(throttle["max"], t.get("max", 0))
        throttle["avg"] = max(throttle["avg"], t.get("avg", 0))


p = Producer(
    {
        "bootstrap.servers": BOOT,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": USER,
        "sasl.password": PASSWORD,
        "ssl.ca.location": CA,
        "acks": "all",
        "compression.type": "none",
        "linger.ms": 5,
        "queue.buffering.max.kbytes": 4096,
        "statistics.interval.ms": 1000,
        "stats_cb": stats,
    }
)

acked = []  # (time, bytes)


def delivered(err, msg):
    if err is None:
        acked.append((time.monotonic(), len(msg.value())))


start = time.monotonic()
sent = 0
while True:
    now = time.monotonic()
    if now - start >= WARMUP + SECONDS:
        break
    # pace the attempts at TRY_RATE; the client queue fills once the broker throttles
    if sent < (now - start) * TRY_RATE:
        try:
            p.produce(TOPIC, VALUE, on_delivery=delivered)
            sent += len(VALUE)
        except BufferError:
            p.poll(0.01)
    p.poll(0)
    time.sleep(0.001)
end = time.monotonic()
window = [n for t, n in acked if start + WARMUP <= t <= end]
rate = sum(window) / (end - start - WARMUP)
p.poll(1.5)  # a last statistics callback
p.purge()
p.flush(10)
print(
    f"rate_bytes_per_s={int(rate)} throttle_max_ms={throttle['max']} "
    f"throttle_avg_ms={throttle['avg']} acked={sum(n for _, n in acked)}"
)
