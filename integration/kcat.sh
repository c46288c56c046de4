#!/usr/bin/env bash
# Debian's kcat (librdkafka 2.0.2) against the built binary: metadata, produce (plain and every
# codec), consume, an idempotent producer whose produce responses are lost (through
# clients/faultproxy.py, in front of a second broker), graceful SIGTERM shutdown and restart
# with the data intact.
# Usage: integration/kcat.sh [path/to/tiercel]
set -euo pipefail
bin=${1:-target/release/tiercel}
command -v kcat >/dev/null || { echo "kcat is not installed (apt-get install kcat)"; exit 1; }
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
b=127.0.0.1:$port
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pass=0; fail=0
check() { # name, expected, actual
  if [ "$2" == "$3" ]; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1: expected [$2] got [$3]"; fi
}
start() {
  "$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data" >>"$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start"; cat "$work/broker.log"; exit 1
}
fport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fpid=""; ppid=""
trap 'kill -TERM $pid $fpid $ppid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
start

check "metadata lists the broker" "1" "$(kcat -b $b -L | grep -c "broker 0 at 127.0.0.1:$port")"
printf 'k1:v1\nk2:v2\nk3:v3\n' | kcat -b $b -P -t plain -K: -X acks=all
check "consume keys and values" "0 k1 v1|1 k2 v2|2 k3 v3" "$(kcat -b $b -C -t plain -e -q -f '%o %k %s\n' | paste -sd'|')"
for z in gzip snappy lz4 zstd; do
  seq 1 500 | kcat -b $b -P -t "codec-$z" -z $z -X acks=all
  check "codec $z: 500 records in order" "$(seq 1 500 | paste -sd+)" "$(kcat -b $b -C -t "codec-$z" -e -q -f '%s\n' | paste -sd+)"
done
check "metadata shows created topics" "5" "$(kcat -b $b -L | grep -c '^  topic ')"
check "read from the end offset" "2 k3 v3" "$(kcat -b $b -C -t plain -o -1 -e -q -f '%o %k %s\n')"

# Idempotence under lost acknowledgements: a broker reached only through the fault proxy, which
# throws away every second produce response of a client id (up to four) after the broker wrote
# the batch and cuts the connection; librdkafka resends the same batches and the broker must
# store each once (-E: kcat carries on past the lost connection, as a producing application does).
"$bin" --listen "127.0.0.1:$fport" --advertised-listener "127.0.0.1:$pport" --metrics-listen 127.0.0.1:0 \
  --data-dir "$work/faulty-data" >"$work/faulty.log" 2>&1 &
fpid=$!
touch "$work/faults.log"
python3 "$(dirname "$0")/clients/faultproxy.py" "$pport" "127.0.0.1:$fport" "$work/faults.log" 2>"$work/proxy.err" &
ppid=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$pport) 2>/dev/null && (echo >/dev/tcp/127.0.0.1/$fport) 2>/dev/null && break; sleep 0.1; done
seq 1 2000 | kcat -E -b 127.0.0.1:$pport -P -t idem -X client.id=idem-kcat -X enable.idempotence=true \
  -X linger.ms=0 -X batch.num.messages=100 -X acks=all
check "idempotent producer: responses were lost" "yes" "$(grep -q '^fault idem-kcat ' "$work/faults.log" && echo yes || echo no)"
check "idempotent producer: 2000 records once each, in order" "$(seq 1 2000 | paste -sd+)" \
  "$(kcat -b 127.0.0.1:$pport -C -t idem -e -q -f '%s\n' | paste -sd+)"
check "idempotent producer: log end offset" "2000" \
  "$(kcat -b 127.0.0.1:$pport -C -t idem -o -1 -e -q -f '%o\n' | awk '{print $1+1}')"

kill -TERM $pid; wait $pid; rc=$?
check "SIGTERM exits 0" "0" "$rc"
check "clean shutdown marker written" "yes" "$([ -f "$work/data/.tiercel_clean_shutdown" ] && echo yes || echo no)"
start
check "data survives restart" "0 k1 v1|1 k2 v2|2 k3 v3" "$(kcat -b $b -C -t plain -e -q -f '%o %k %s\n' | paste -sd'|')"
printf 'k4:v4\n' | kcat -b $b -P -t plain -K: -X acks=all
check "offsets continue after restart" "3 k4 v4" "$(kcat -b $b -C -t plain -o 3 -e -q -f '%o %k %s\n')"

echo "kcat: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
