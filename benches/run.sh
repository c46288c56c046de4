#!/usr/bin/env bash
# Produce/consume benchmark with librdkafka's own load generator, rdkafka_performance, built
# from the librdkafka source bundled in the rdkafka-sys crate (the version the tests use).
#
# For each record size (100 B, 1 KiB) and partition count (1, 8): a fresh broker, N records
# produced with acks=all, then consumed from the beginning. Reports records/s, MB/s, broker
# CPU-seconds per GB (utime+stime from /proc), peak RSS (VmHWM) and produce latency p50/p99
# (per-message, produce() call to delivery report, so it includes client-side queueing).
#
# Each configuration runs REPEAT times (default 3) on a fresh broker and data dir; the table
# shows the median of each column. BIN=path/to/tiercel measures another build with the same
# harness (for before/after ratios).
#
# SIZES="1024" PARTS="1" narrow it to some configurations (for a quick A/B). CODEC=lz4 (or
# gzip, snappy, zstd) has the producer compress its batches (default none). PIN=1 runs the
# broker on CPU 0 and the client on CPU 1 (less noise between A/B runs on a shared machine).
#
# Every run's raw row is appended to benches/results/run.csv (commit, date, machine, binary,
# configuration and each measure); the table of medians goes to bench-results/results.md.
#
# Usage: [REPEAT=3] [BIN=...] [SIZES=...] [PARTS=...] benches/run.sh [records]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
root=$PWD
# shellcheck source=benches/lib.sh
source benches/lib.sh
out=$root/bench-results
mkdir -p "$out"
build_perf
REPEAT=${REPEAT:-3}
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin=${BIN:-$root/target/release/tiercel}
broker_cpu=()
client_cpu=()
if [ "${PIN:-0}" = 1 ]; then
  broker_cpu=(taskset -c 0)
  client_cpu=(taskset -c 1)
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
port=$(free_port)
b=127.0.0.1:$port
mport=$(free_port)
table=$out/results.md
csv=$(results_dir)/run.csv
[ -f "$csv" ] || echo "commit,date,machine,binary,pinned,records,size,partitions,produce_rps,produce_mbps,consume_rps,consume_mbps,broker_cpu_s_per_gb_produced,broker_cpu_s_per_gb_consumed,peak_rss_mib,produce_p50_ms,produce_p99_ms,codec" >"$csv"
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo "+dirty")
{
  echo "codec: ${CODEC:-none}"
  echo
  echo "| records | size | partitions | produce rec/s | produce MB/s | consume rec/s | consume MB/s | broker CPU-s/GB produced | broker CPU-s/GB consumed | peak RSS MiB | produce p50 ms | produce p99 ms |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$table"

for size in ${SIZES:-100 1024}; do
  for parts in ${PARTS:-1 8}; do
   rows=$(mktemp)
   for _ in $(seq "$REPEAT"); do
    work=$(mktemp -d)
    "${broker_cpu[@]}" "$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data" --num-partitions "$parts" --log-level warn >"$work/broker.log" 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT # a failed run leaves no broker behind
    for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    t0=$(cpu_ticks $pid)
    "${client_cpu[@]}" "$perf" -P -t bench -b "$b" -s "$size" -c "$N" -a -1 -l -A "$work/lat.txt" \
      -X linger.ms=5 -X queue.buffering.max.messages=1000000 -X compression.codec="${CODEC:-none}" -q >"$work/produce.txt" 2>&1
    t1=$(cpu_ticks $pid)
    line=$(grep "messages produced" "$work/produce.txt" | tail -1)
    p_ms=$(echo "$line" | sed -E 's/.* in ([0-9]+)ms.*/\1/')
    delivered=$(echo "$line" | sed -E 's/.*bytes\), ([0-9]+) delivered.*/\1/')
    [ "$delivered" = "$N" ] || { echo "only $delivered of $N delivered"; cat "$work/produce.txt"; exit 1; }
    pflags=()
    for p in $(seq 0 $((parts - 1))); do pflags+=(-p "$p"); done
    start=$(date +%s%N)
    "${client_cpu[@]}" "$perf" -C -t bench -b "$b" "${pflags[@]}" -o beginning -e -X enable.partition.eof=true -q >"$work/consume.txt" 2>&1
    c_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    consumed=$(grep "consumed in" "$work/consume.txt" | tail -1 | sed -E 's/^% ([0-9]+) messages.*/\1/')
    [ "$consumed" = "$N" ] || { echo "consumed $consumed of $N"; cat "$work/consume.txt"; exit 1; }
    t2=$(cpu_ticks $pid)
    rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
    kill -TERM $pid; wait $pid || true
    python3 - "$N" "$size" "$p_ms" "$c_ms" "$t0" "$t1" "$t2" "$hz" "$rss" "$work/lat.txt" >>"$rows" <<'PY'
import sys
n, size, p_ms, c_ms, t0, t1, t2, hz, rss = map(int, sys.argv[1:10])
lat = sorted(int(x) for x in open(sys.argv[10]) if x.strip())
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0
gb = n * size / 1e9
print(n*1000/p_ms, n*size/p_ms/1000, n*1000/max(c_ms,1), n*size/max(c_ms,1)/1000,
      (t1-t0)/hz/gb, (t2-t1)/hz/gb, rss, pct(0.5), pct(0.99))
PY
    echo "$commit,$(date -u +%FT%TZ),$(machine),$bin,${PIN:-0},$N,$size,$parts,$(tail -1 "$rows" | tr ' ' ','),${CODEC:-none}" >>"$csv"
    rm -rf "$work"
    sync
   done
   python3 - "$N" "$size" "$parts" "$rows" >>"$table" <<'PY'
import sys, statistics
n, size, parts = sys.argv[1:4]
cols = list(zip(*[[float(x) for x in l.split()] for l in open(sys.argv[4]) if l.strip()]))
m = [statistics.median(c) for c in cols]
print(f"| {int(n)} | {size} B | {parts} | {m[0]:,.0f} | {m[1]:,.1f} | {m[2]:,.0f} | {m[3]:,.1f} | {m[4]:.2f} | {m[5]:.2f} | {m[6]:.0f} | {m[7]:.1f} | {m[8]:.1f} |")
PY
   rm -f "$rows"
  done
done
cat "$table"
