#!/usr/bin/env bash
# Tiered storage on Azure Blob Storage, against Azurite (Microsoft's Azure Storage emulator) on
# loopback, driven by kcat: ~10 MB through 1 MiB segments into an `az://` container; segments and
# create-only manifests appear in the container; local disk stays within local retention; every
# record reads back from offset 0 (most of them from the container); after the broker is killed
# -9 and its data dir wiped, the log is rebuilt from the container and produce continues.
# Usage: integration/azure.sh [path/to/tiercel]   (installs Azurite from npm into target/azurite
# and azure-storage-blob from PyPI if missing; needs node and kcat)
set -euo pipefail
bin=${1:-target/release/tiercel}
root=$(cd "$(dirname "$0")/.." && pwd)
command -v kcat >/dev/null || { echo "kcat is not installed (apt-get install kcat)"; exit 1; }
azurite=$root/target/azurite
if [ ! -x "$azurite/node_modules/.bin/azurite-blob" ]; then
  mkdir -p "$azurite"
  npm install -s --no-audit --no-fund --prefix "$azurite" azurite@3 >/dev/null
fi
if ! python3 -c 'import azure.storage.blob' 2>/dev/null; then
  pip3 install -q azure-storage-blob 2>/dev/null || pip3 install -q --break-system-packages azure-storage-blob
fi
work=$(mktemp -d)
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free); mport=$(free); aport=$(free)
b=127.0.0.1:$port
pass=0; fail=0
check() { # name, expected, actual
  if [ "$2" == "$3" ]; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1: expected [$2] got [$3]"; fi
}
az_pid=""; pid=""
trap 'kill -TERM $pid 2>/dev/null || true; kill -TERM $az_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

# Azurite's well-known development account (the same for every Azurite install)
export AZ_CONN="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$aport/devstoreaccount1;"
"$azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$aport" \
  --location "$work/azurite" --silent --skipApiVersionCheck >"$work/azurite.log" 2>&1 &
az_pid=$!
# blobs LIST: "<name> <size>" per blob in the container; blobs CREATE: make the container
blobs() {
  python3 - "$1" <<'PY'
import os, sys
from azure.storage.blob import BlobServiceClient
svc = BlobServiceClient.from_connection_string(os.environ["AZ_CONN"])
if sys.argv[1] == "CREATE":
    svc.create_container("tiercel")
else:
    for blob in svc.get_container_client("tiercel").list_blobs():
        print(blob.name, blob.size)
PY
}
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$aport) 2>/dev/null && break; sleep 0.2; done
blobs CREATE

start() {
  AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL="http://127.0.0.1:$aport" \
  "$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" \
    --data-dir "$work/data" --tier-url az://tiercel/cluster-a --log-segment-bytes 1048576 \
    --log-local-retention-bytes 2097152 --log-retention-check-interval-ms 300 \
    --tier-request-timeout-ms 3000 >>"$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start"; tail -30 "$work/broker.log"; exit 1
}
metric() { curl -s "http://127.0.0.1:$mport/metrics" | awk -v m="$1" '$1 ~ "^"m {s+=$2} END {print s+0}'; }
remote_segments() { blobs LIST | grep -c '^cluster-a/topics/.*\.log ' || true; }
wait_for() { # description, command that succeeds when done, tries (0.5 s each)
  for _ in $(seq "$3"); do eval "$2" && return 0; sleep 0.5; done
  echo "timed out: $1"; return 1
}

start
python3 - "$work/input" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(10000):
        f.write(f"{i:08d}-" + chr(97 + i % 26) * 1000 + "\n")
PY
kcat -b $b -P -t tiered -X acks=all -l "$work/input"
check "every record acked" "10000" "$(kcat -b $b -C -t tiered -o -1 -e -q -f '%o\n' | awk '{print $1+1}')"
wait_for "closed segments uploaded" '[ "$(metric tiercel_tier_upload_lag_segments)" -eq 0 ] && [ "$(remote_segments)" -ge 8 ]' 120 || true
check "all closed segments uploaded" "0" "$(metric tiercel_tier_upload_lag_segments)"
check "at least 8 segments in the container" "yes" "$([ "$(remote_segments)" -ge 8 ] && echo yes || echo no)"
check "manifests in the container (written create-only)" "yes" \
  "$([ "$(blobs LIST | grep -c '^cluster-a/topics/tiered-[^/]*/0/manifest/' || true)" -gt 0 ] && echo yes || echo no)"
check "no tier request failed" "0" "$(metric tiercel_tier_request_errors_total)"
local_bytes() { find "$work/data/tiered-0" -name '*.log' -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
wait_for "local retention" '[ "$(local_bytes)" -le 4194304 ]' 40 || true
check "local segments within local retention (<= 2 MiB + active segment)" "yes" "$([ "$(local_bytes)" -le 4194304 ] && echo yes || echo no)"
kcat -b $b -C -t tiered -o beginning -e -q -f '%s\n' > "$work/out"
check "consume from offset 0: every record, in order" "$(md5sum < "$work/input")" "$(md5sum < "$work/out")"
check "records were read from the container" "yes" "$([ "$(metric tiercel_tier_download_bytes_total)" -gt 4000000 ] && echo yes || echo no)"

# a lost disk: only the container is left
kill -KILL $pid; wait $pid 2>/dev/null || true
rm -rf "$work/data"
start
hw=$(kcat -b $b -C -t tiered -o -1 -e -q -f '%o\n' | awk '{print $1+1}')
check "rebuilt log reaches the last uploaded segment" "yes" "$([ "$hw" -ge 8000 ] && echo yes || echo no)"
kcat -b $b -C -t tiered -o beginning -e -q -f '%s\n' > "$work/out2"
check "rebuilt from offset 0: the records match the input" "$(head -n "$hw" "$work/input" | md5sum)" "$(md5sum < "$work/out2")"
echo "after" | kcat -b $b -P -t tiered -X acks=all
check "new records continue after the rebuilt history" "$hw after" "$(kcat -b $b -C -t tiered -o -1 -e -q -f '%o %s\n')"

echo "azure.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
