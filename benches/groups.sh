#!/usr/bin/env bash
# Consumer-group latency with kcat -G against the release broker (medians of REPEAT runs):
#  - subscribe-to-first-record: a new group's single member, from process start to its first
#    record (includes the group's initial rebalance delay, group_initial_rebalance_delay_ms);
#  - 10 members joining at once: from starting 10 members of a new group on a 10-partition
#    topic until every one of them has received a record.
# Every run's raw row is appended to benches/results/groups.csv (commit, date, machine, delay, ms).
# Usage: [REPEAT=5] benches/groups.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=benches/lib.sh
source benches/lib.sh
csv=$(results_dir)/groups.csv
[ -f "$csv" ] || echo "commit,date,machine,group_initial_rebalance_delay_ms,subscribe_to_first_record_ms,ten_members_all_served_ms" >"$csv"
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo "+dirty")
REPEAT=${REPEAT:-5}
cargo build --release -q
bin=$PWD/target/release/tiercel
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
b=127.0.0.1:$port
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ms() { date +%s%3N; }
run() { # delay
  "$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data-$1" --num-partitions 10 --group-initial-rebalance-delay-ms "$1" --log-level warn >"$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  for p in $(seq 0 9); do echo "r$p" | kcat -b $b -P -t bench -p "$p"; done
  first=(); ten=()
  for i in $(seq "$REPEAT"); do
    t0=$(ms); kcat -b $b -G "first-$i" bench -c 1 -q -X auto.offset.reset=earliest >/dev/null; first+=($(( $(ms) - t0 )))
    t0=$(ms)
    for m in $(seq 10); do
      kcat -b $b -G "ten-$i" bench -c 1 -q -X auto.offset.reset=earliest >/dev/null &
    done
    wait $(jobs -p | grep -v "^$pid$")
    ten+=($(( $(ms) - t0 )))
    echo "$commit,$(date -u +%FT%TZ),$(machine),$1,${first[-1]},${ten[-1]}" >>"$csv"
  done
  kill -TERM $pid; wait $pid || true
  med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  echo "| $1 | $(med "${first[@]}") | $(med "${ten[@]}") |"
}
echo "| group_initial_rebalance_delay_ms | subscribe to first record, ms | 10 members joining at once, all served, ms |"
echo "|---|---|---|"
run 3000
run 0
rm -rf "$work"
