#!/usr/bin/env bash
# What incremental fetch sessions (KIP-227) save: one Java consumer (kafka-clients 4.3.0, which
# uses sessions by default) assigned all PARTS partitions of a topic, polling for DURATION seconds while a
# producer writes RATE records/s to the partitions in turn, against the same broker binary with
# sessions on (max_incremental_fetch_session_cache_slots = 1000) and off (0), alternating,
# REPEAT rounds. Reports the medians of: fetch requests, bytes sent and received per request
# (the consumer's own network metrics) and broker CPU-seconds (utime+stime from /proc) per
# minute. Raw rows go to benches/results/fetch_sessions.csv.
#
# Usage: [REPEAT=3] [PARTS=1000] [DURATION=20] [RATE=100] [BIN=...] benches/fetch_sessions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-3}
PARTS=${PARTS:-1000}
DURATION=${DURATION:-20}
RATE=${RATE:-100}
root=$PWD
# shellcheck source=benches/lib.sh
source benches/lib.sh
jars=$(integration/java_jars.sh)
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin=${BIN:-target/release/tiercel}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
out=$(results_dir)/fetch_sessions.csv
[ -f "$out" ] || echo "date,commit,sessions,parts,seconds,rate,fetches,bytes_out_per_fetch,bytes_in_per_fetch,broker_cpu_s,read,sent" >"$out"
commit=$(git rev-parse --short HEAD)
tck=$(getconf CLK_TCK)

rows=()
for round in $(seq "$REPEAT"); do
  for slots in 1000 0; do
    port=$(free_port)
    rm -rf "$work/data"
    "$bin" --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --data-dir "$work/data" --tier-url none \
      --max-incremental-fetch-session-cache-slots "$slots" --log-level warn >"$work/broker.log" 2>&1 &
    pid=$!
    ready_at "$port" 30 >/dev/null
    python3 - "$port" "$PARTS" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}"})
a.create_topics([NewTopic("sessions", int(sys.argv[2]), 1)])["sessions"].result(60)
PY
    t0=$(cpu_ticks $pid)
    line=$(java -cp "$jars/*" benches/FetchSessions.java "127.0.0.1:$port" sessions "$PARTS" "$DURATION" "$RATE" 2>"$work/java.err") \
      || { tail -20 "$work/java.err"; exit 1; }
    t1=$(cpu_ticks $pid)
    kill -9 $pid; wait $pid 2>/dev/null || true; pid=
    cpu=$(python3 -c "print(f'{($t1 - $t0) / $tck:.2f}')")
    on=$([ "$slots" -gt 0 ] && echo on || echo off)
    echo "round $round, sessions $on: fetches,out/fetch,in/fetch,read,sent = $line; broker CPU ${cpu} s"
    IFS=, read -r f o i r s <<<"$line"
    echo "$(date -u +%FT%TZ),$commit,$on,$PARTS,$DURATION,$RATE,$f,$o,$i,$cpu,$r,$s" >>"$out"
    rows+=("$on,$f,$o,$i,$cpu")
    [ "$r" = "$s" ] || { echo "the consumer read $r of $s records"; exit 1; }
  done
done
printf '%s\n' "${rows[@]}" | python3 -c '
import statistics, sys
by = {}
for line in sys.stdin:
    on, *vals = line.strip().split(",")
    by.setdefault(on, []).append([float(v) for v in vals])
print("%8s %8s %12s %11s %13s   (medians; ranges)" % ("sessions", "fetches", "B out/fetch", "B in/fetch", "broker CPU-s"))
for on in ("on", "off"):
    rows = by[on]
    cols = list(zip(*rows))
    med = [statistics.median(c) for c in cols]
    rng = [f"{min(c):.0f}-{max(c):.0f}" if i < 3 else f"{min(c):.2f}-{max(c):.2f}" for i, c in enumerate(cols)]
    print(f"{on:>8} {med[0]:>8.0f} {med[1]:>12.0f} {med[2]:>11.0f} {med[3]:>13.2f}   {rng}")
'
