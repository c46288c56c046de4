#!/usr/bin/env bash
# Debian's kcat (librdkafka 2.0.2) against the built binary: metadata, produce (plain and every
# codec), consume, graceful SIGTERM shutdown and restart with the data intact.
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
trap 'kill -TERM $pid 2>/dev/null || true; rm -rf "$work"' EXIT
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

kill -TERM $pid; wait $pid; rc=$?
check "SIGTERM exits 0" "0" "$rc"
check "clean shutdown marker written" "yes" "$([ -f "$work/data/.tiercel_clean_shutdown" ] && echo yes || echo no)"
start
check "data survives restart" "0 k1 v1|1 k2 v2|2 k3 v3" "$(kcat -b $b -C -t plain -e -q -f '%o %k %s\n' | paste -sd'|')"
printf 'k4:v4\n' | kcat -b $b -P -t plain -K: -X acks=all
check "offsets continue after restart" "3 k4 v4" "$(kcat -b $b -C -t plain -o 3 -e -q -f '%o %k %s\n')"

echo "kcat: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
