#!/usr/bin/env bash
# Many partitions on one broker: TOPICS topics (default 1,000) of PARTS partitions (default 10),
# created with CreateTopics in batches of 100; then RECORDS records of 100 B (default 200,000)
# produced with acks=all round-robin over every partition by one confluent-kafka producer (a
# Python client: the produce rate is the client's as much as the broker's); then Metadata for
# every topic, timed by the same client (median of 10); the broker's RSS; and the time from
# starting the process to its first answered request after a clean stop and after kill -9.
# Rows go to benches/results/partitions.csv.
#
# Usage: [BIN=...] [TOPICS=1000] [PARTS=10] [RECORDS=200000] benches/partitions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=benches/lib.sh
source benches/lib.sh
TOPICS=${TOPICS:-1000}
PARTS=${PARTS:-10}
RECORDS=${RECORDS:-200000}
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin=${BIN:-$root/target/release/tiercel}
python3 -c 'import confluent_kafka' 2>/dev/null || python3 -m pip install -q confluent-kafka
csv=$(results_dir)/partitions.csv
[ -f "$csv" ] || echo "commit,date,machine,binary,topics,partitions_per_topic,create_s,records,produce_rps,metadata_ms,rss_mib,peak_rss_mib,start_after_stop_ms,start_after_kill_ms" >"$csv"
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo "+dirty")
port=$(free_port)
mport=$(free_port)
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT

# Starts the broker on $work/data; sets $pid and $ready_ms (start to first answered request).
start() {
  local t0
  t0=$(date +%s%3N)
  "$bin" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data" --log-level warn \
    >>"$work/broker.log" 2>&1 &
  pid=$!
  ready_ms=$(($(ready_at "$port" 120) - t0))
}

start
load=$(python3 - "127.0.0.1:$port" "$TOPICS" "$PARTS" "$RECORDS" <<'PY'
import statistics, sys, time
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
boot, topics, parts, records = sys.argv[1], *map(int, sys.argv[2:5])
admin = AdminClient({"bootstrap.servers": boot})
names = [f"many-{i:05d}" for i in range(topics)]
t0 = time.monotonic()
for i in range(0, topics, 100):
    futures = admin.create_topics([NewTopic(n, parts, 1) for n in names[i:i + 100]], operation_timeout=60)
    for f in futures.values():
        f.result()
create_s = time.monotonic() - t0
# every partition known before producing
while len(admin.list_topics(timeout=30).topics) < topics:
    time.sleep(0.2)
p = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5,
              "queue.buffering.max.messages": 1000000})
failed = []
def report(err, _msg):
    if err:
        failed.append(err)
value = b"x" * 100
t0 = time.monotonic()
for i in range(records):
    k = i % (topics * parts)
    while True:
        try:
            p.produce(names[k // parts], value, partition=k % parts, on_delivery=report)
            break
        except BufferError:
            p.poll(0.01)
    if i % 1000 == 0:
        p.poll(0)
left = p.flush(120)
produce_s = time.monotonic() - t0
if left or failed:
    sys.exit(f"{left} records undelivered, {len(failed)} failed: {failed[:3]}")
times = []
for _ in range(10):
    t = time.monotonic()
    md = admin.list_topics(timeout=30)
    times.append((time.monotonic() - t) * 1000)
    assert sum(len(t.partitions) for n, t in md.topics.items() if n.startswith("many-")) == topics * parts
print(f"{create_s:.2f} {records / produce_s:.0f} {statistics.median(times):.1f}")
PY
)
rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
peak=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
kill -TERM "$pid"; wait "$pid" || true
start
after_stop=$ready_ms
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
start
after_kill=$ready_ms
kill -TERM "$pid"; wait "$pid" || true; pid=
read -r create_s rps md_ms <<<"$load"
echo "$commit,$(date -u +%FT%TZ),$(machine),$bin,$TOPICS,$PARTS,$create_s,$RECORDS,$rps,$md_ms,$rss,$peak,$after_stop,$after_kill" >>"$csv"
echo "$TOPICS topics x $PARTS partitions: created in $create_s s; $RECORDS records of 100 B at $rps records/s (acks=all, one Python producer); Metadata for all $md_ms ms; RSS $rss MiB (peak $peak); start after a clean stop $after_stop ms, after kill -9 $after_kill ms"
