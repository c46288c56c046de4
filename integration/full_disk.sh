#!/usr/bin/env bash
# A real full disk: the broker's data dir on a 3 MiB tmpfs, acks=all produce (kcat) until it
# fills. Expected: produce fails with KAFKA_STORAGE_ERROR (the client gives up after its
# timeout), the broker keeps running, every acknowledged record is readable and intact, no
# partial batch is left in the segment (restart finds nothing to truncate). Needs root (mount).
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
pass=0; fail=0
check() { if [ "$2" == "$3" ]; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1: expected [$2] got [$3]"; fi; }
start() {
  "$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" --data-dir "$mnt/data" >>"$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start"; cat "$work/broker.log"; exit 1
}
cleanup() { kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; umount "$mnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
start

# 40 records of 100 KiB each (4 MB) into 3 MiB: the tail of the stream cannot fit
python3 -c '
import sys
for i in range(40):
    sys.stdout.write(("%03d" % i) * 34133 + "\n")' >"$work/records.txt"
kcat -b $b -P -t fill -X acks=all -X message.timeout.ms=3000 -X linger.ms=0 -X batch.num.messages=1 \
  -l "$work/records.txt" 2>"$work/kcat.err" || true
failed=$(grep -c "Delivery failed" "$work/kcat.err" || true)
echo "acknowledged $((40 - failed)) of 40, $failed failed"
check "some produces failed once the disk was full" "yes" "$([ "$failed" -gt 0 ] && echo yes || echo no)"
check "the broker reported KAFKA_STORAGE_ERROR" "yes" "$(grep -q "append failed" "$work/broker.log" && echo yes || echo no)"
check "the broker is still running" "yes" "$(kill -0 $pid 2>/dev/null && echo yes || echo no)"
acked=$((40 - failed))
kcat -b $b -C -t fill -e -q -f '%o %S\n' >"$work/consumed.txt"
check "every acknowledged record is readable" "$acked" "$(wc -l <"$work/consumed.txt")"
check "records are whole and in order" "$(seq 0 $((acked - 1)) | awk '{print $1, 102399}' | md5sum)" "$(md5sum <"$work/consumed.txt")"

kill -TERM $pid; wait $pid || true
start
check "restart truncates nothing (no partial batch was left)" "no" "$(grep -q "truncating" "$work/broker.log" && echo yes || echo no)"
check "the same records after restart" "$acked" "$(kcat -b $b -C -t fill -e -q -f '%o\n' | wc -l)"

echo "full disk: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
