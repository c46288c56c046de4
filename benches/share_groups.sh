#!/usr/bin/env bash
# Share-group throughput next to a classic group on the same topic: RECORDS records of SIZE
# bytes are produced once to a PARTS-partition topic; then, alternating, a share group
# (KafkaShareConsumer, implicit acknowledgement) and a KIP-848 consumer group of CONSUMERS Java
# consumers (kafka-clients 4.3.0) each read all of them, REPEAT rounds (a new group each time).
# Reports the medians of records/s from the consumers' start to the last record, and the
# broker's CPU-seconds per million records. WORK_US gives each record that many microseconds of
# work in the consumer (0: none, the throughput of the consumers and the broker alone). Raw rows
# go to benches/results/share_groups.csv.
#
# Usage: [REPEAT=3] [RECORDS=300000] [SIZE=100] [PARTS=6] [CONSUMERS=6] [WORK_US=0] [BIN=...] benches/share_groups.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-3}
RECORDS=${RECORDS:-300000}
SIZE=${SIZE:-100}
PARTS=${PARTS:-6}
CONSUMERS=${CONSUMERS:-6}
WORK_US=${WORK_US:-0}
root=$PWD
# shellcheck source=benches/lib.sh
source benches/lib.sh
build_perf
jars=$(integration/java_jars.sh)
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin=${BIN:-target/release/tiercel}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
out=$(results_dir)/share_groups.csv
[ -f "$out" ] || echo "date,commit,mode,consumers,parts,records,work_us,seconds,records_per_s,deliveries,min_per_consumer,max_per_consumer,broker_cpu_s" >"$out"
commit=$(git rev-parse --short HEAD)
tck=$(getconf CLK_TCK)

port=$(free_port)
"$bin" --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --data-dir "$work/data" --tier-url none \
  --num-partitions "$PARTS" --log-level warn >"$work/broker.log" 2>&1 &
pid=$!
ready_at "$port" 30 >/dev/null
"$perf" -P -t share-bench -b "127.0.0.1:$port" -s "$SIZE" -c "$RECORDS" -X acks=all -X linger.ms=5 -q >/dev/null 2>&1
echo "produced $RECORDS records of $SIZE bytes to $PARTS partitions"
declare -A rates cpus
for round in $(seq "$REPEAT"); do
  modes="share classic"
  [ $((round % 2)) = 0 ] && modes="classic share"
  for mode in $modes; do
    t0=$(cpu_ticks $pid)
    line=$(java -cp "$jars/*" benches/ShareGroups.java "127.0.0.1:$port" share-bench "$mode" "$CONSUMERS" "$RECORDS" "g-$mode-$round" "$WORK_US" 2>"$work/java.err") \
      || { echo "$line"; tail -20 "$work/java.err"; exit 1; }
    t1=$(cpu_ticks $pid)
    cpu=$(awk -v t=$((t1 - t0)) -v k="$tck" 'BEGIN {printf "%.2f", t / k}')
    IFS=, read -r m n got secs rate deliveries lo hi <<<"$line"
    echo "$(date -u +%FT%TZ),$commit,$m,$n,$PARTS,$got,$WORK_US,$secs,$rate,$deliveries,$lo,$hi,$cpu" >>"$out"
    echo "round $round $mode: $rate records/s ($secs s, $deliveries deliveries, per consumer $lo..$hi), broker $cpu CPU-s"
    rates[$mode]+="$rate "
    cpus[$mode]+="$(awk -v c="$cpu" -v r="$got" 'BEGIN {printf "%.2f", c / r * 1e6}') "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "machine: $(machine); $CONSUMERS consumers, $PARTS partitions, $RECORDS records of $SIZE bytes, $WORK_US µs of work each, medians of $REPEAT"
for mode in share classic; do
  echo "$mode: $(median <<<"${rates[$mode]}") records/s, broker $(median <<<"${cpus[$mode]}") CPU-s per million records"
done
