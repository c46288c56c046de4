#!/usr/bin/env bash
# Many consumers of one topic: RECORDS records of SIZE bytes (default 200,000 of 1 KiB) produced
# with acks=all into a topic of PARTS partitions (default 8), then CONSUMERS consumers (default
# 50, librdkafka's rdkafka_performance, each assigned every partition) all reading it from the
# beginning at once, to its end. With COLD=1 the page cache is dropped before they start (needs
# root), so the first reads come from the disk. Per run: the wall time until the last consumer
# is done, the records/s and MB/s delivered in total, the broker's CPU-s per GB delivered, the
# share of the record bytes sent with sendfile (tiercel_fetch_sendfile_bytes_total over
# tiercel_fetch_bytes_total), the bytes the broker read from the disk (/proc/<pid>/io
# read_bytes) and its peak RSS. REPEAT runs (default 3) on a fresh broker and data dir each.
# Rows go to benches/results/fanout.csv.
#
# Usage: [BIN=...] [CONSUMERS=50] [RECORDS=200000] [SIZE=1024] [PARTS=8] [COLD=1] [REPEAT=3] benches/fanout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=benches/lib.sh
source benches/lib.sh
build_perf
CONSUMERS=${CONSUMERS:-50}
RECORDS=${RECORDS:-200000}
SIZE=${SIZE:-1024}
PARTS=${PARTS:-8}
REPEAT=${REPEAT:-3}
COLD=${COLD:-0}
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin=${BIN:-$root/target/release/tiercel}
csv=$(results_dir)/fanout.csv
[ -f "$csv" ] || echo "commit,date,machine,binary,records,size,partitions,consumers,cold,wall_s,records_per_s,mb_per_s,broker_cpu_gb,sendfile_share,disk_read_mib,peak_rss_mib" >"$csv"
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo "+dirty")
port=$(free_port)
mport=$(free_port)
b=127.0.0.1:$port
work=
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; pkill -f "rdkafka_performance -C -t fan" 2>/dev/null; [ -n "$work" ] && rm -rf "$work"' EXIT

# record bytes Fetch returned, and those of them sent with sendfile
fetched_bytes() {
  curl -s "127.0.0.1:$mport/metrics" | awk '/^tiercel_fetch_bytes_total/ {v+=$2} END {printf "%.0f", v+0}'
}
sendfile_bytes() {
  curl -s "127.0.0.1:$mport/metrics" | awk '/^tiercel_fetch_sendfile_bytes_total/ {v=$2} END {printf "%.0f", v+0}'
}
read_bytes() { awk '/^read_bytes/ {print $2}' "/proc/$pid/io"; }

pflags=()
for p in $(seq 0 $((PARTS - 1))); do pflags+=(-p "$p"); done
for rep in $(seq 1 "$REPEAT"); do
  work=$(mktemp -d)
  "$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data" --num-partitions "$PARTS" \
    --log-level warn >"$work/broker.log" 2>&1 &
  pid=$!
  ready_at "$port" 60 >/dev/null
  "$perf" -P -t fan -b "$b" -s "$SIZE" -c "$RECORDS" -a -1 -X linger.ms=5 \
    -X queue.buffering.max.messages=1000000 -q >"$work/produce.txt" 2>&1
  grep -q "$RECORDS delivered" "$work/produce.txt" || { echo "produce failed"; cat "$work/produce.txt"; exit 1; }
  if [ "$COLD" = 1 ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
  t0=$(cpu_ticks "$pid"); f0=$(sendfile_bytes); b0=$(fetched_bytes); r0=$(read_bytes)
  start=$(date +%s%N)
  for c in $(seq 1 "$CONSUMERS"); do
    "$perf" -C -t fan -b "$b" "${pflags[@]}" -o beginning -e -X enable.partition.eof=true -q \
      >"$work/consume-$c.txt" 2>&1 &
  done
  wait_ok=1
  for job in $(jobs -p); do [ "$job" = "$pid" ] || wait "$job" || wait_ok=0; done
  wall_ns=$(($(date +%s%N) - start))
  t1=$(cpu_ticks "$pid"); f1=$(sendfile_bytes); b1=$(fetched_bytes); r1=$(read_bytes)
  for c in $(seq 1 "$CONSUMERS"); do
    got=$(grep "consumed in" "$work/consume-$c.txt" | tail -1 | sed -E 's/^% ([0-9]+) messages.*/\1/')
    [ "$got" = "$RECORDS" ] || { echo "consumer $c read ${got:-nothing} of $RECORDS"; cat "$work/consume-$c.txt"; exit 1; }
  done
  [ "$wait_ok" = 1 ] || { echo "a consumer failed"; exit 1; }
  rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid" || true; pid=
  row=$(python3 - "$RECORDS" "$SIZE" "$CONSUMERS" "$wall_ns" "$t0" "$t1" "$f0" "$f1" "$r0" "$r1" "$(getconf CLK_TCK)" "$b0" "$b1" <<'PY'
import sys
n, size, consumers, wall_ns, t0, t1, f0, f1, r0, r1, hz, b0, b1 = map(int, sys.argv[1:14])
total = n * size * consumers
wall = wall_ns / 1e9
print("%.2f,%.0f,%.1f,%.3f,%.3f,%.1f" % (wall, n * consumers / wall, total / wall / 1e6,
      (t1 - t0) / hz / (total / 1e9), (f1 - f0) / max(b1 - b0, 1), (r1 - r0) / 2**20))
PY
)
  echo "run $rep: wall_s,records_per_s,mb_per_s,broker_cpu_gb,sendfile_share,disk_read_mib = $row, peak RSS $rss MiB"
  echo "$commit,$(date -u +%FT%TZ),$(machine),$(basename "$bin"),$RECORDS,$SIZE,$PARTS,$CONSUMERS,$COLD,$row,$rss" >>"$csv"
  rm -rf "$work"; work=
done
