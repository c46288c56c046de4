#!/usr/bin/env bash
# The topic storm (tests/topic_storm.rs) against a release binary, REPEAT times (default 3):
# two clients auto-create 5,000 topics each with one Metadata request while a third produces
# with acks=all, one record at a time. Prints and records (benches/results/topic_storm.csv) how
# long the storm took and the producer's latency during it. BIN defaults to the release build;
# LABEL names it in the results (default: the commit).
# Usage: [REPEAT=3] [BIN=...] [LABEL=...] [STORM_TOPICS=5000] benches/topic_storm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=benches/lib.sh
source benches/lib.sh
REPEAT=${REPEAT:-3}
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin=${BIN:-$root/target/release/tiercel}
csv=$(results_dir)/topic_storm.csv
[ -f "$csv" ] || echo "commit,date,machine,binary,topics,storm_s,records,p50_ms,p99_ms,max_ms" >"$csv"
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo "+dirty")
for _ in $(seq "$REPEAT"); do
  line=$(TIERCEL_BIN=$bin cargo test --release -q --test topic_storm -- --nocapture 2>&1 | grep "topic storm:")
  echo "$line"
  python3 - "$line" "$commit" "$(date -u +%FT%TZ)" "$(machine)" "${LABEL:-$commit}" >>"$csv" <<'PY'
import re, sys
line, commit, date, machine, binary = sys.argv[1:6]
m = re.search(r"(\d+) topics created in ([\d.]+) s.*?(\d+) records, p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms", line)
print(",".join([commit, date, machine, binary] + list(m.groups())))
PY
done
