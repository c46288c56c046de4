#!/usr/bin/env bash
# Consumer groups with Debian's kcat (librdkafka 2.0.2) against the built binary:
#  1. three `kcat -G` members share a 6-partition topic; one is killed with -9; the other two
#     take over its partitions after the session timeout and every record is consumed;
#  2. a group commits, the broker is killed with -9 and restarted, the group resumes from its
#     commits (no record before them is delivered again).
# Usage: integration/groups.sh [path/to/tiercel]
set -euo pipefail
bin=$(realpath "${1:-target/release/tiercel}")
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
b=127.0.0.1:$port
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pass=0; fail=0
check() { if [ "$2" == "$3" ]; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1: expected [$2] got [$3]"; fi; }
pids=()
start() {
  "$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data" --num-partitions 6 >>"$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start"; cat "$work/broker.log"; exit 1
}
cleanup() { [ -n "${KEEP:-}" ] && { echo "kept $work"; return; }; for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; kill -9 $pid 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
member() { # name group topic: a kcat -G member writing "partition:offset value" lines
  kcat -b $b -G "$2" "$3" -u -q -f '%p:%o %s\n' -X auto.offset.reset=earliest -X session.timeout.ms=6000 \
    -X heartbeat.interval.ms=500 -X auto.commit.interval.ms=200 >"$work/$1.out" 2>"$work/$1.err" &
  pids+=($!)
  eval "pid_$1=$!"
}
wait_values() { # min want files... ; waits up to 40 s until the files hold `want` distinct values >= min
  local min=$1 want=$2; shift 2
  for _ in $(seq 400); do
    [ "$(cat "$@" 2>/dev/null | awk -v m="$min" '$2 >= m {print $2}' | sort -u | wc -l)" -ge "$want" ] && return 0
    sleep 0.1
  done
  return 1
}
start

# --- 1. a member killed with -9
# the topic exists first; the three members join within the group's initial rebalance delay
# (3 s) so they share one generation; records are produced once they all have partitions
echo 0 | kcat -b $b -P -t shared -p 0 -X acks=all
member a g1 shared; member b g1 shared; member c g1 shared
# wait until the broker reports all three in a Stable group (a member that joined after the
# first generation leaves the group rebalancing for a while), then a moment for the fetches
stable=no
for _ in $(seq 150); do
  m=$(curl -s "http://127.0.0.1:$mport/metrics")
  grep -q 'tiercel_group_members{group="g1"} 3$' <<<"$m" \
    && grep -q 'tiercel_group_state{group="g1",state="Stable"} 1$' <<<"$m" && { stable=yes; break; }
  sleep 0.2
done
[ $stable = yes ] || echo "note: the group was not Stable with 3 members within 30 s"
sleep 2
# ten records to each partition: keyless records from one kcat would stick to one or two
# partitions (librdkafka's sticky partitioner), leaving members with nothing to read
for p in 0 1 2 3 4 5; do seq $((p * 10 + 1)) $((p * 10 + 10)) | kcat -b $b -P -t shared -p $p -X acks=all; done
wait_values 1 60 "$work"/{a,b,c}.out || true
check "three members consume all 60 records" "60" "$(cat "$work"/{a,b,c}.out | awk '$2 >= 1 {print $2}' | sort -u | wc -l)"
check "every member got a share" "3" "$(for m in a b c; do [ -s "$work/$m.out" ] && echo x; done | wc -l)"
if [ "$(for m in a b c; do [ -s "$work/$m.out" ] && echo x; done | wc -l)" != 3 ]; then
  for m in a b c; do echo "  member $m read partitions: $(cut -d: -f1 "$work/$m.out" | sort -u | tr '\n' ' ')"; done
  grep -i 'g1\|group' "$work/broker.log" | tail -n 20 || true
  curl -s "http://127.0.0.1:$mport/metrics" | grep 'group="g1"' || true
fi
kill -9 "$pid_c"
seq 61 120 | kcat -b $b -P -t shared -X acks=all
wait_values 61 60 "$work"/{a,b}.out || true
check "after kill -9 of one member, the others consume every new record" \
  "$(seq 61 120 | sort)" "$(cat "$work"/{a,b}.out | awk '{print $2}' | awk '$1 > 60' | sort -u)"

# --- 2. commits survive kill -9 of the broker
seq 1 20 | kcat -b $b -P -t resume -X acks=all
member r1 g2 resume
wait_values 1 20 "$work/r1.out" || true
check "the group consumed the first 20" "20" "$(sort -u "$work/r1.out" | wc -l)"
sleep 1 # two auto-commit intervals
kill -TERM "$pid_r1"; wait "$pid_r1" 2>/dev/null || true # kcat commits on close
kill -9 $pid; wait $pid 2>/dev/null || true
start
seq 21 30 | kcat -b $b -P -t resume -X acks=all
member r2 g2 resume
wait_values 21 10 "$work/r2.out" || true
sleep 1
check "after the broker's kill -9 the group resumes from its commits" "$(seq 21 30 | sort)" "$(awk '{print $2}' "$work/r2.out" | sort -u)"

echo "groups: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
