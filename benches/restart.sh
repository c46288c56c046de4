#!/usr/bin/env bash
# Restart time with a large log: GB gigabytes of 1 KiB records in one partition, in segments of
# SEGMENT_MB (default 10 GB in about 1,000 segments of 10 MiB), then the time from starting the
# broker to its first answered request: after kill -9 (REPEAT times) and after a clean stop
# (REPEAT times). BIN (default: the release build) is measured. With OLD_BIN, the data is
# produced by OLD_BIN, OLD_BIN's restarts are measured first, then BIN's on the same data (its
# first start after the old binary is reported apart: "upgrade").
#
# Raw results are appended to benches/results/restart.csv (commit, date, machine, binary, kind,
# ms, GB, segments); the medians are printed.
#
# The producer sends batches of 16 KiB (the Java client's default batch.size). COLD=1 drops the
# page cache before every start (needs root): the restart then reads from the disk.
#
# Usage: [GB=10] [SEGMENT_MB=10] [REPEAT=3] [COLD=0] [TIER=none|default] [BIN=...] [OLD_BIN=... [OLD_LABEL=...]] benches/restart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=benches/lib.sh
source benches/lib.sh
GB=${GB:-10}
SEGMENT_MB=${SEGMENT_MB:-10}
REPEAT=${REPEAT:-3}
TIER=${TIER:-none}
build_perf
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin=${BIN:-$root/target/release/tiercel}
old=${OLD_BIN:-}
work=$(mktemp -d -p "${WORK_DIR:-/tmp}")
port=$(free_port)
mport=$(free_port)
pid=
trap 'if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
tier_args=()
if [ "$TIER" = none ]; then tier_args=(--tier-url none); fi
csv=$(results_dir)/restart.csv
[ -f "$csv" ] || echo "commit,date,machine,binary,kind,ms,gb,segments" >"$csv"
cold=
if [ "${COLD:-0}" = 1 ]; then cold=-cold; fi
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo "+dirty")

# starts binary $1; sets $pid and $ms (milliseconds until it answers)
start() {
  local t0 ready
  if [ "${COLD:-0}" = 1 ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
  t0=$(date +%s%3N)
  "$1" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data" \
    --log-segment-bytes $((SEGMENT_MB << 20)) --log-level warn "${tier_args[@]}" >>"$work/broker.log" 2>&1 &
  pid=$!
  ready=$(ready_at "$port") || { echo "broker did not start" >&2; tail -5 "$work/broker.log" >&2; exit 1; }
  ms=$((ready - t0))
}
crash() { kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
record() { # binary kind ms
  local segs
  segs=$(find "$work/data" -name '*.log' -path '*bench-0*' | wc -l)
  echo "$commit,$(date -u +%FT%TZ),$(machine),$1,$2$cold,$3,$GB,$segs" >>"$csv"
  echo "$1 $2 $3" >>"$work/rows"
}

n=$((GB * 1000000000 / 1024))
producer=${old:-$bin}
start "$producer"
echo "producing $GB GB ($n records of 1 KiB) in segments of $SEGMENT_MB MiB ..."
"$perf" -P -t bench -b "127.0.0.1:$port" -s 1024 -c "$n" -a 1 -X linger.ms=5 -X batch.size=16384 \
  -X queue.buffering.max.messages=1000000 -q >"$work/produce.txt" 2>&1
grep "messages produced" "$work/produce.txt" | tail -1
crash
measure() { # binary label
  for _ in $(seq "$REPEAT"); do start "$1"; record "$2" crash "$ms"; crash; done
  start "$1"
  stop
  for _ in $(seq "$REPEAT"); do start "$1"; record "$2" clean "$ms"; stop; done
  start "$1"; crash
  record "$2" crash "$ms"
}
if [ -n "$old" ]; then
  measure "$old" "${OLD_LABEL:-old}"
  start "$bin"; record "$commit" upgrade "$ms"
  crash
fi
measure "$bin" "$commit"
echo "data: $(du -sh "$work/data" | cut -f1), $(find "$work/data" -name '*.log' -path '*bench-0*' | wc -l) segments"
python3 - "$work/rows" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, kind, ms = line.split()
    rows[(b, kind)].append(int(ms))
print("| binary | restart | runs | median ms | min ms | max ms |")
print("|---|---|---|---|---|---|")
for (b, kind), v in sorted(rows.items()):
    print(f"| {b} | {kind} | {len(v)} | {statistics.median(v):.0f} | {min(v)} | {max(v)} |")
PY
