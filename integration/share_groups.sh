#!/usr/bin/env bash
# Share groups (KIP-932) with the Java client's KafkaShareConsumer (kafka-clients 4.3.0) against
# the built binary: six consumers on a 2-partition topic, a consumer killed with -9 holding
# records, rejected and always-released records, then a broker kill -9 and restart (see
# integration/clients/JavaShare.java for every check).
# Usage: integration/share_groups.sh [path/to/tiercel]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "${1:-target/release/tiercel}")
jars=$("$here/java_jars.sh")
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
b=127.0.0.1:$port
pid=; jpid=
start() {
  RUST_LOG=${RUST_LOG:-info} "$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data" \
    --group-share-record-lock-duration-ms 3000 --group-share-session-timeout-ms 10000 \
    --group-share-heartbeat-interval-ms 1000 >>"$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start"; cat "$work/broker.log"; exit 1
}
cleanup() {
  [ -n "$jpid" ] && kill -9 "$jpid" 2>/dev/null || true
  [ -n "$pid" ] && { kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; } || true
  [ -n "${KEEP:-}" ] && { echo "kept $work"; return; }
  rm -rf "$work"
}
trap cleanup EXIT
java_share() { java -cp "$jars/*" -Dshare.source="$here/clients/JavaShare.java" "$here/clients/JavaShare.java" "$@"; }

start
rc=0
# phase 1 ends holding records unacknowledged: it prints READY, then the broker dies with -9
java -cp "$jars/*" -Dshare.source="$here/clients/JavaShare.java" "$here/clients/JavaShare.java" \
  phase1 "$b" "$work/state" >"$work/phase1.out" 2>"$work/phase1.err" &
jpid=$!
for _ in $(seq 1800); do
  grep -q '^READY' "$work/phase1.out" 2>/dev/null && break
  kill -0 $jpid 2>/dev/null || break
  sleep 0.1
done
grep -v '^READY' "$work/phase1.out" || true
grep '^# share' "$work/phase1.err" || true
grep -q '^READY' "$work/phase1.out" || { echo "FAIL phase 1 did not finish"; tail -30 "$work/phase1.err"; rc=1; }
grep -q '^FAIL' "$work/phase1.out" && rc=1
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
# the consumer holding records goes too (it would keep its partition and never fetch again)
kill -9 "$jpid" 2>/dev/null || true; wait "$jpid" 2>/dev/null || true; jpid=
echo "broker killed with -9 while a consumer held records; restarting"
start
java_share phase2 "$b" "$work/state" 2>"$work/phase2.err" || { rc=1; tail -20 "$work/phase2.err"; }
if [ $rc -ne 0 ]; then
  echo "--- broker log (tail)"; tail -40 "$work/broker.log"
fi
exit $rc
