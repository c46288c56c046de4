#!/usr/bin/env bash
# A real full disk: the broker's data dir on a 3 MiB tmpfs, acks=all produce (confluent-kafka,
# retries off so each failure reaches its delivery report) until it fills. Expected, from the
# delivery reports: a good share of the records acknowledged (a lower bound), every failure
# KAFKA_STORAGE_ERROR, the broker still running, every acknowledged record readable with the
# exact bytes sent and nothing else; then kill -9 and an unclean restart (which CRC-checks the
# active segment): the same records, and no partial batch to cut off. Needs root (mount).
# Usage: integration/full_disk.sh [path/to/tiercel]
set -euo pipefail
bin=$(realpath "${1:-target/release/tiercel}")
work=$(mktemp -d)
mnt=$work/disk
mkdir -p "$mnt"
mount -t tmpfs -o size=3m tmpfs "$mnt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
b=127.0.0.1:$port
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
  pip3 install -q confluent-kafka 2>/dev/null || pip3 install -q --break-system-packages confluent-kafka
fi
pass=0; fail=0
check() { if [ "$2" == "$3" ]; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1: expected [$2] got [$3]"; fi; }
start() {
  "$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" --data-dir "$mnt/data" --tier-url none >>"$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start"; cat "$work/broker.log"; exit 1
}
cleanup() { kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; umount "$mnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
start

# 40 records of 100 KiB each (4 MB) into 3 MiB: the tail of the stream cannot fit. Prints one
# line per record: "ok <index> <offset>" or "err <index> <error name>".
python3 - "$b" >"$work/reports.txt" <<'PY'
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "acks": "all", "retries": 0,
              "enable.idempotence": False, "linger.ms": 0, "batch.num.messages": 1,
              "message.timeout.ms": 10000, "compression.type": "none"})
reports = {}
def report(i):
    def cb(err, msg):
        reports[i] = ("err", err.name()) if err else ("ok", msg.offset())
    return cb
for i in range(40):
    p.produce("fill", value=(b"%03d" % i) * 34133, partition=0, on_delivery=report(i))
    p.flush(15)
for i in range(40):
    kind, what = reports.get(i, ("err", "NO_REPORT"))
    print(kind, i, what)
PY
acked=$(grep -c '^ok ' "$work/reports.txt" || true)
failed=$(grep -c '^err ' "$work/reports.txt" || true)
echo "acknowledged $acked of 40, $failed failed ($(grep '^err ' "$work/reports.txt" | awk '{print $3}' | sort | uniq -c | xargs))"
check "at least 15 records acknowledged before the disk filled" "yes" "$([ "$acked" -ge 15 ] && echo yes || echo no)"
check "some produces failed once the disk was full" "yes" "$([ "$failed" -gt 0 ] && echo yes || echo no)"
check "every failure is KAFKA_STORAGE_ERROR" "0" "$(grep '^err ' "$work/reports.txt" | grep -vc ' KAFKA_STORAGE_ERROR$' || true)"
check "acknowledged records got offsets 0, 1, 2, … in order" \
  "$(seq 0 $((acked - 1)) | md5sum)" "$(grep '^ok ' "$work/reports.txt" | awk '{print $3}' | md5sum)"
check "the broker is still running" "yes" "$(kill -0 "$pid" 2>/dev/null && echo yes || echo no)"

# what a consumer reads: every acknowledged record with the bytes sent for it, nothing else
expected() { grep '^ok ' "$work/reports.txt" | awk '{printf "%d %d\n", $3, $2}'; }
read_back() {
  python3 - "$b" <<'PY'
import sys
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "full-disk-check",
              "enable.auto.commit": False, "enable.partition.eof": True})
c.assign([TopicPartition("fill", 0, OFFSET_BEGINNING)])
while True:
    m = c.poll(10)
    if m is None:
        print("TIMEOUT"); break
    if m.error():
        if m.error().code() == m.error()._PARTITION_EOF:
            break
        print("ERROR", m.error().name()); break
    v = m.value()
    i = int(v[:3])
    # the index the record carries, if its bytes are exactly what was sent for it
    print(m.offset(), i if v == (b"%03d" % i) * 34133 else "CORRUPT")
c.close()
PY
}
check "every acknowledged record reads back intact, and nothing else" "$(expected | md5sum)" "$(read_back | md5sum)"

# an unclean restart walks and CRC-checks the active segment
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
start
check "the unclean restart found nothing to cut off (no partial batch was left)" "no" "$(grep -q "truncating" "$work/broker.log" && echo yes || echo no)"
check "after kill -9 and restart: the same records, intact" "$(expected | md5sum)" "$(read_back | md5sum)"

echo "full disk: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
