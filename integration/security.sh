#!/usr/bin/env bash
# Secured listeners against the release binary: a CA and certificates made with the openssl CLI;
# PLAINTEXT, SSL (client certificates requested, then required) and SASL_SSL listeners; the
# first user made offline with `tiercel user set`; the Java Admin making a SCRAM user over
# SASL_SSL; kcat, confluent-kafka, kafka-python and the Java client producing and consuming over
# SASL_SSL with SCRAM-SHA-512 and over SSL with a client certificate; wrong passwords and
# untrusted certificates refused; a renewed certificate served without a restart; garbage on the
# TLS ports; users surviving a restart; the SASL counters in /metrics; the ACL authorizer with
# grants made by the Java Admin; OAUTHBEARER with kafka-python and confluent-kafka (RS256 tokens
# signed with the openssl CLI, checked against a JWKS file); a client quota set by the Java Admin holding a producer to
# 1 MiB/s, before and after a restart.
# Usage: integration/security.sh [path/to/tiercel]
set -euo pipefail
bin=$(realpath "${1:-target/release/tiercel}")
here=$(cd "$(dirname "$0")" && pwd)
command -v kcat >/dev/null || { echo "kcat is not installed (apt-get install kcat)"; exit 1; }
command -v openssl >/dev/null || { echo "openssl is not installed (apt-get install openssl)"; exit 1; }
if ! python3 -c 'import confluent_kafka, kafka' 2>/dev/null; then
  pip3 install -q confluent-kafka kafka-python 2>/dev/null \
    || pip3 install -q --break-system-packages confluent-kafka kafka-python
fi
jars=$("$here/java_jars.sh")
work=$(mktemp -d)
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pp=$(free); sp=$(free); ssp=$(free); mport=$(free)
plain=127.0.0.1:$pp; ssl=127.0.0.1:$sp; sasl=127.0.0.1:$ssp
pid=""
trap 'kill -TERM $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }
check() { # name, expected, actual
  if [ "$2" == "$3" ]; then ok "$1"; else bad "$1: expected [$2] got [$3]"; fi
}

cd "$work"
# a CA, a server certificate for 127.0.0.1, a client certificate, and a stranger's
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=Tiercel CI CA" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj "/CN=Someone Else" 2>/dev/null
issue() { # name, subject, extensions, CA
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  printf '%b' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -CAcreateserial -out "$1.pem" -days 2 \
    -extfile "$1.ext" 2>/dev/null
}
issue server "/CN=broker" "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" ca
issue client "/O=Tiercel CI/CN=client-1" "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n" ca
issue stranger "/CN=stranger" "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n" other-ca
# OAUTHBEARER: an RSA key whose public half is the broker's JWKS file, and a stranger's key
openssl genrsa -out oauth.key 2048 2>/dev/null
openssl genrsa -out oauth-other.key 2048 2>/dev/null
python3 "$here/clients/oauth_clients.py" jwks oauth.key jwks.json

# the first users, made offline before the broker ever runs
echo "admin-secret" | "$bin" user set --data-dir data --user admin --password-stdin >/dev/null
echo "app-secret" | "$bin" user set --data-dir data --user app --mechanism SCRAM-SHA-512 --password-stdin >/dev/null
check "tiercel user list" "admin app" "$("$bin" user list --data-dir data | cut -f1 | sort | tr '\n' ' ' | sed 's/ $//')"

# the ACL authorizer: admin, app and the client certificate are super users; java-app gets its
# grants from the Java Admin
start() { # ssl_client_auth
  "$bin" --listeners "PLAINTEXT://$plain,SSL://$ssl,SASL_SSL://$sasl" \
    --authorizer acl --super-users "User:admin;User:app;User:CN=client-1,O=Tiercel CI;User:ANONYMOUS;User:oauth-app" \
    --sasl-enabled-mechanisms "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN,OAUTHBEARER" \
    --sasl-oauthbearer-jwks-file jwks.json --sasl-oauthbearer-expected-audience tiercel \
    --ssl-certificate server.pem --ssl-key server.key --ssl-ca ca.pem --ssl-client-auth "$1" \
    --metrics-listen "127.0.0.1:$mport" --data-dir data >>broker.log 2>&1 &
  pid=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$ssp) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start"; cat broker.log; exit 1
}
start requested

SASL=(-X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512 -X ssl.ca.location=ca.pem)
MTLS=(-X security.protocol=SSL -X ssl.ca.location=ca.pem -X ssl.certificate.location=client.pem -X ssl.key.location=client.key)
as_app=(-X sasl.username=app -X sasl.password=app-secret)

check "kcat SASL_SSL metadata names the SASL_SSL listener" "1" \
  "$(kcat -b "$sasl" "${SASL[@]}" "${as_app[@]}" -L -m 10 | grep -c "broker 0 at $sasl")"
check "kcat PLAINTEXT metadata names the PLAINTEXT listener" "1" \
  "$(kcat -b "$plain" -L -m 10 | grep -c "broker 0 at $plain")"
seq 1 100 | kcat -b "$sasl" "${SASL[@]}" "${as_app[@]}" -P -t kcat-sasl
check "kcat SASL_SSL produce+consume" "100" \
  "$(kcat -b "$sasl" "${SASL[@]}" "${as_app[@]}" -C -t kcat-sasl -o beginning -e -q | wc -l)"
seq 1 100 | kcat -b "$ssl" "${MTLS[@]}" -P -t kcat-mtls
check "kcat SSL client certificate produce+consume" "100" \
  "$(kcat -b "$ssl" "${MTLS[@]}" -C -t kcat-mtls -o beginning -e -q | wc -l)"
if kcat -b "$sasl" "${SASL[@]}" -X sasl.username=app -X sasl.password=wrong -L -m 5 >kcat-denied.log 2>&1; then
  bad "kcat with a wrong password was let in"
else
  ok "kcat with a wrong password is refused"
fi
if kcat -b "$ssl" -X security.protocol=SSL -X ssl.ca.location=ca.pem -X ssl.certificate.location=stranger.pem \
  -X ssl.key.location=stranger.key -L -m 5 >kcat-stranger.log 2>&1; then
  bad "kcat with an untrusted client certificate was let in"
else
  ok "kcat with an untrusted client certificate is refused"
fi

echo "== confluent-kafka, kafka-python"
if python3 "$here/clients/security_clients.py" "$sasl" "$ssl" ca.pem client.pem client.key app app-secret \
  >python.out 2>python.err; then :; fi
while read -r line; do case "$line" in PASS*) ok "${line#PASS }";; *) bad "${line#FAIL }";; esac; done <python.out
[ -s python.out ] || { bad "python clients printed nothing"; tail -20 python.err; }

echo "== OAUTHBEARER: kafka-python, confluent-kafka"
if python3 "$here/clients/oauth_clients.py" run "$sasl" ca.pem oauth.key oauth-other.key \
  >oauth.out 2>oauth.err; then :; fi
while read -r line; do case "$line" in PASS*) ok "${line#PASS }";; *) bad "${line#FAIL }";; esac; done <oauth.out
[ -s oauth.out ] || { bad "the OAUTHBEARER clients printed nothing"; tail -20 oauth.err; }

echo "== Java client (kafka-clients 4.3.0)"
if java -cp "$jars/*" "$here/clients/SecurityClient.java" "$sasl" "$ssl" ca.pem client.pem client.key admin admin-secret \
  >java.out 2>java.err; then :; fi
while read -r line; do case "$line" in PASS*) ok "${line#PASS }";; *) bad "${line#FAIL }";; esac; done <java.out
[ -s java.out ] || { bad "the Java client printed nothing"; tail -20 java.err; }

# the Java Admin gave java-app a producer_byte_rate of 1 MiB/s: a producer trying 10 MB/s for
# 30 s is held to it, and throttled as both the client and /metrics see it
quota_out=$(python3 "$here/clients/quota_probe.py" "$sasl" ca.pem java-app java-secret java-quota 30 2>quota.err || true)
echo "quota: $quota_out"
rate=$(echo "$quota_out" | sed -n 's/.*rate_bytes_per_s=\([0-9]*\).*/\1/p')
tmax=$(echo "$quota_out" | sed -n 's/.*throttle_max_ms=\([0-9]*\).*/\1/p')
[ -n "$rate" ] && [ "$rate" -ge 943718 ] && [ "$rate" -le 1153433 ] \
  && ok "a 1 MiB/s quota holds a 10 MB/s producer to $rate B/s over 30 s (within 10%)" \
  || bad "quota: acknowledged at ${rate:-?} B/s, not 1 MiB/s +-10% [$quota_out] $(tail -3 quota.err)"
[ "${tmax:-0}" -gt 0 ] && ok "the producer's own statistics show the throttle (max ${tmax} ms)" \
  || bad "the producer saw no throttle [$quota_out]"
throttled=$(curl -s "http://127.0.0.1:$mport/metrics" \
  | awk '/^tiercel_throttled_responses_total\{/ && /principal="User:java-app"/ && /quota="produce"/ {print int($2)}')
[ "${throttled:-0}" -gt 0 ] && ok "/metrics counts java-app's throttled produce responses ($throttled)" \
  || bad "/metrics: no throttled produce responses for User:java-app"

# garbage on the TLS ports closes those connections and nothing else
python3 - "$sp" "$ssp" <<'EOF'
import os, socket, sys
for port in sys.argv[1:]:
    for payload in (os.urandom(4096), b"\x16\x03\x01\xff\xff" + os.urandom(100), b"GET / HTTP/1.0\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        try:
            s.sendall(payload)
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()
EOF
check "the broker serves on after garbage on its TLS ports" "1" \
  "$(kcat -b "$sasl" "${SASL[@]}" "${as_app[@]}" -L -m 10 | grep -c "broker 0 at $sasl")"

# a renewed certificate is served without a restart
issue renewed "/CN=renewed" "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" ca
cp renewed.key server.key.new && cp renewed.pem server.pem.new && mv server.key.new server.key && mv server.pem.new server.pem
served=""
for _ in $(seq 40); do
  served=$(openssl s_client -connect "$ssl" -CAfile ca.pem </dev/null 2>/dev/null | openssl x509 -noout -subject 2>/dev/null || true)
  case "$served" in *renewed*) break;; esac
  sleep 0.5
done
case "$served" in *renewed*) ok "the renewed certificate is served without a restart";; *) bad "still serving [$served]";; esac
check "kcat over SASL_SSL after the renewal" "100" \
  "$(kcat -b "$sasl" "${SASL[@]}" "${as_app[@]}" -C -t kcat-sasl -o beginning -e -q | wc -l)"

metrics=$(curl -s "http://127.0.0.1:$mport/metrics")
succeeded=$(echo "$metrics" | awk '/^tiercel_sasl_authentications_total\{mechanism="SCRAM-SHA-512"\}/ {print int($2)}')
failed=$(echo "$metrics" | awk '/^tiercel_sasl_authentication_failures_total\{mechanism="SCRAM-SHA-512"\}/ {print int($2)}')
tls_failed=$(echo "$metrics" | awk '/^tiercel_tls_handshake_failures_total/ {print int($2)}')
[ "${succeeded:-0}" -gt 0 ] && [ "${failed:-0}" -gt 0 ] && [ "${tls_failed:-0}" -gt 0 ] \
  && ok "/metrics counts SASL successes ($succeeded), failures ($failed) and TLS handshake failures ($tls_failed)" \
  || bad "/metrics: sasl ok=${succeeded:-none} failed=${failed:-none} tls failures=${tls_failed:-none}"

# users survive a restart; client certificates now required
kill -TERM "$pid"; wait "$pid" || true
start required
check "a user and ACLs made with the Java Admin survive a restart" "10" \
  "$(kcat -b "$sasl" "${SASL[@]}" -X sasl.username=java-app -X sasl.password=java-secret -C -t java-fixed -o beginning -e -q | wc -l)"
denied_out=$(timeout 20 kcat -b "$sasl" "${SASL[@]}" -X sasl.username=java-app -X sasl.password=java-secret \
  -C -t kcat-sasl -o beginning -e -q 2>&1 || true)
check "java-app reads nothing of a topic it has no grant for" "0" "$(echo "$denied_out" | grep -c '^[0-9][0-9]*$' || true)"
quota_out=$(python3 "$here/clients/quota_probe.py" "$sasl" ca.pem java-app java-secret java-quota 3 2>quota.err || true)
tmax=$(echo "$quota_out" | sed -n 's/.*throttle_max_ms=\([0-9]*\).*/\1/p')
[ "${tmax:-0}" -gt 0 ] && ok "java-app's quota survives a restart (throttled up to ${tmax} ms)" \
  || bad "after the restart java-app was not throttled [$quota_out]"
check "kcat SSL client certificate after the restart" "100" \
  "$(kcat -b "$ssl" "${MTLS[@]}" -C -t kcat-mtls -o beginning -e -q | wc -l)"
if kcat -b "$ssl" -X security.protocol=SSL -X ssl.ca.location=ca.pem -L -m 5 >kcat-nocert.log 2>&1; then
  bad "kcat without a client certificate was let in (ssl_client_auth=required)"
else
  ok "kcat without a client certificate is refused (ssl_client_auth=required)"
fi

echo "security: $pass passed, $fail failed"
if [ "$fail" -gt 0 ]; then
  echo "--- broker log (last 40 lines)"; tail -40 broker.log
  echo "--- python"; tail -30 python.err 2>/dev/null || true
  echo "--- java"; tail -30 java.err 2>/dev/null || true
  echo "--- oauth"; tail -30 oauth.err 2>/dev/null || true
  exit 1
fi
