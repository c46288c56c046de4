#!/usr/bin/env bash
# A real Prometheus against the built binary: the scrape passes `promtool check metrics`, the
# target is up, and queries move with traffic produced by kcat.
# Usage: integration/metrics.sh [path/to/tiercel]
set -euo pipefail
bin=$(realpath "${1:-target/release/tiercel}")
command -v prometheus >/dev/null && command -v promtool >/dev/null || { echo "prometheus is not installed (apt-get install prometheus)"; exit 1; }
work=$(mktemp -d)
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free); mport=$(free); pport=$(free)
b=127.0.0.1:$port
pass=0; fail=0
check() { if [ "$2" == "$3" ]; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1: expected [$2] got [$3]"; fi; }
"$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data" >"$work/broker.log" 2>&1 &
pid=$!
# the shipped config, pointed at this broker's port and scraped every second
sed -e "s/127.0.0.1:9464/127.0.0.1:$mport/" -e 's/scrape_interval: [0-9]*s/scrape_interval: 1s/' \
  "$(dirname "$0")/../config/prometheus.yml" >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$pport" >"$work/prometheus.log" 2>&1 &
ppid_=$!
trap 'kill $pid $ppid_ 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
query() { # PromQL -> the first sample's value, or empty
  curl -s "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
wait_for() { # PromQL expected
  for _ in $(seq 150); do [ "$(query "$1")" == "$2" ] && return 0; sleep 0.2; done; return 1
}

check "promtool check config accepts config/prometheus.yml" "0" "$(promtool check config "$work/prometheus.yml" >/dev/null 2>&1; echo $?)"
seq 1 100 | kcat -b $b -P -t metered -X acks=all
curl -s "http://127.0.0.1:$mport/metrics" >"$work/scrape.txt"
check "promtool check metrics finds nothing to complain about" "" "$(promtool check metrics <"$work/scrape.txt" 2>&1)"
wait_for 'up{job="tiercel"}' 1 || true
check "Prometheus sees the target up" "1" "$(query 'up{job="tiercel"}')"
wait_for 'tiercel_produce_records_total{topic="metered"}' 100 || true
check "produced records reach Prometheus" "100" "$(query 'tiercel_produce_records_total{topic="metered"}')"
seq 101 150 | kcat -b $b -P -t metered -X acks=all
wait_for 'tiercel_partition_high_watermark{topic="metered",partition="0"}' 150 || true
check "the high watermark moves with traffic" "150" "$(query 'tiercel_partition_high_watermark{topic="metered",partition="0"}')"
kcat -b $b -C -t metered -e -q >/dev/null
fetched=$(query 'tiercel_fetch_bytes_total{topic="metered"}')
for _ in $(seq 50); do [ -n "$fetched" ] && break; sleep 0.2; fetched=$(query 'tiercel_fetch_bytes_total{topic="metered"}'); done
check "fetched bytes are counted" "yes" "$([ -n "$fetched" ] && awk -v v="$fetched" 'BEGIN {print (v > 0) ? "yes" : "no"}')"

echo "metrics: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
