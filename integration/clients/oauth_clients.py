"""OAUTHBEARER with real clients: RS256 JWTs signed with the openssl CLI (no JWT library), the
broker checking them against a JWKS file made from the same key.

  oauth_clients.py jwks KEY.pem OUT.json        the public key as a JWKS file (kid "ci")
  oauth_clients.py run SASL_BOOT CA KEY.pem OTHER_KEY.pem
      kafka-python and confluent-kafka produce and consume over SASL_SSL with OAUTHBEARER as
      User:oauth-app; a token signed by another key is refused. One PASS/FAIL line per case.
"""
import base64
import json
import subprocess
import sys
import time
import traceback
import uuid

AUDIENCE = "tiercel"
N = 50


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwks(key, out):
    modulus = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True,
                             capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    n = bytes.fromhex(modulus)
    doc = {"keys": [{"kty": "RSA", "kid": "ci", "alg": "RS256", "use": "sig",
                     "n": b64url(n), "e": b64url((65537).to_bytes(3, "big"))}]}
    with open(out, "w") as f:
        json.dump(doc, f)


def token(key, sub="oauth-app", ttl=600):
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "ci"}).encode())
    now = int(time.time())
    claims = b64url(json.dumps({"sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + ttl}).encode())
    signing_input = f"{header}.{claims}".encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                         check=True, capture_output=True).stdout
    return f"{header}.{claims}.{b64url(sig)}", now + ttl


results = []


def case(name):
    def wrap(f):
        try:
            f()
            results.append("PASS " + name)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            traceback.print_exc()
            results.append(f"FAIL {name}: {e!r}")
        return f
    return wrap


def run(boot, ca, key, other_key):
    try:
        from kafka.net.sasl.oauth import AbstractTokenProvider
    except ImportError:  # kafka-python 2.x
        from kafka.oauth.abstract import AbstractTokenProvider
    from kafka import KafkaConsumer, KafkaProducer
    from confluent_kafka import Consumer, KafkaException, Producer

    class Provider(AbstractTokenProvider):
        def __init__(self, signing_key):
            super().__init__()
            self.signing_key = signing_key

        def token(self):
            return token(self.signing_key)[0]

    def kp_conf(signing_key):
        return dict(bootstrap_servers=boot, security_protocol="SASL_SSL", ssl_cafile=ca,
                    sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Provider(signing_key))

    @case("kafka-python SASL_SSL OAUTHBEARER produce+consume")
    def _():
        topic = f"oauth-kp-{uuid.uuid4().hex[:8]}"
        p = KafkaProducer(acks="all", **kp_conf(key))
        for f in [p.send(topic, f"kp-{i}".encode()) for i in range(N)]:
            f.get(timeout=30)
        p.close()
        c = KafkaConsumer(topic, group_id=topic, auto_offset_reset="earliest",
                          consumer_timeout_ms=15000, **kp_conf(key))
        got = {m.value.decode() for m in c}
        c.close()
        assert got == {f"kp-{i}" for i in range(N)}, f"consumed {len(got)} of {N}"

    @case("kafka-python OAUTHBEARER with a token signed by another key is refused")
    def _():
        try:
            p = KafkaProducer(max_block_ms=10000, **kp_conf(other_key))
            p.send("oauth-denied", b"x").get(timeout=15)
        except Exception as e:  # noqa: BLE001 - the refusal is the point
            if "uthentication" not in repr(e) and "SASL" not in repr(e) and "Timeout" not in repr(e):
                raise
            return
        raise AssertionError("delivered with a forged token")

    def ck_conf(signing_key):
        def cb(_config):
            return token(signing_key)
        return {"bootstrap.servers": boot, "security.protocol": "SASL_SSL", "ssl.ca.location": ca,
                "sasl.mechanisms": "OAUTHBEARER", "oauth_cb": cb}

    @case("confluent-kafka SASL_SSL OAUTHBEARER produce+consume")
    def _():
        topic = f"oauth-ck-{uuid.uuid4().hex[:8]}"
        errors = []
        p = Producer(ck_conf(key))
        for i in range(N):
            p.produce(topic, f"ck-{i}".encode(), on_delivery=lambda e, m: e and errors.append(e))
        assert p.flush(30) == 0 and not errors, f"undelivered: {errors}"
        c = Consumer({**ck_conf(key), "group.id": topic, "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        got, deadline = set(), time.time() + 30
        while len(got) < N and time.time() < deadline:
            m = c.poll(1)
            if m is not None and m.error() is None:
                got.add(m.value().decode())
        c.close()
        assert got == {f"ck-{i}" for i in range(N)}, f"consumed {len(got)} of {N}"

    @case("confluent-kafka OAUTHBEARER with a token signed by another key is refused")
    def _():
        errors = []
        p = Producer({**ck_conf(other_key), "message.timeout.ms": 8000,
                      "error_cb": lambda e: errors.append(e)})
        delivered = []
        p.produce("oauth-denied", b"x", on_delivery=lambda e, m: delivered.append(e))
        p.flush(12)
        assert delivered and delivered[0] is not None, "delivered with a forged token"
        assert any("uthentication" in str(e) or "SASL" in str(e) for e in errors), f"errors: {errors}"

    for r in results:
        print(r, flush=True)
    return all(r.startswith("PASS") for r in results)


if __name__ == "__main__":
    if sys.argv[1] == "jwks":
        jwks(sys.argv[2], sys.argv[3])
    else:
        sys.exit(0 if run(*sys.argv[2:6]) else 1)
