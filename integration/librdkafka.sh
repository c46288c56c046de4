#!/usr/bin/env bash
# librdkafka's own test suite against the built binary. The suite is the one bundled with the
# rdkafka-sys crate's librdkafka source (the version the Rust tests use); it is built once into
# target/bench-tools (shared with benches/run.sh) and run against a fresh broker configured like
# librdkafka's "default" test scenario on one broker (auto-created topics, num.partitions=4).
# With rapidjson-dev installed when the suite is built (.ci/run installs it), the tests that
# check JSON statistics (0053, 0110) run too.
#
#   integration/librdkafka.sh [path/to/tiercel] [quick|full]
#
# quick (CI): a fixed set of fast tests across produce, consume, offsets, groups, admin and
#   idempotence, transactions. full (on demand, ~10 minutes): every test that talks to a broker, except the
#   excluded ones below. Prints one line per test (PASS / FAIL / SKIP / EXCLUDED) and a pass rate
#   over the applicable tests; fails if an applicable test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/tiercel}")
mode=${2:-quick}
root=$PWD
src=$root/target/bench-tools/librdkafka

# Tests that cannot apply to this broker, and why (they are reported, not run).
declare -A EXCLUDED=(
  [0052_msg_timestamps]="creates topics with Kafka's kafka-topics.sh (needs a Kafka installation)"
  [0077_compaction]="creates topics with Kafka's kafka-topics.sh (needs a Kafka installation)"
  [0109_auto_create_topics]="runs Kafka's kafka-acls/kafka-configs shell tools"
  [0115_producer_auth]="runs Kafka's kafka-acls shell tool (needs an authorizer)"
  [0119_consumer_auth]="runs Kafka's kafka-acls shell tool (needs an authorizer)"
  [0081_admin]="its ACL sub-tests need an authorizer (CreateAcls/DescribeAcls/DeleteAcls are not served)"
  [0103_transactions]="creates its topics with replication factor 3 (a three-broker cluster; one Kafka broker refuses them too)"
  [0101_fetch_from_follower]="creates its topic with replication factor 3 and reads from a follower (a three-broker cluster with racks)"
  [0098_consumer_txn]="creates its topics with replication factor 3 (a three-broker cluster) and drives Kafka's Java launcher"
)
QUICK="0001_multiobj 0002_unkpart 0003_msgmaxsize 0005_order 0007_autotopic 0008_reqacks
0011_produce_batch 0012_produce_consume 0013_null_msgs 0014_reconsume_191 0015_offsets_seek
0017_compression 0019_list_groups 0021_rkt_destroy 0029_assign_offset 0030_offset_commit
0031_get_offsets 0034_offset_reset 0035_api_version 0036_partial_fetch 0041_fetch_max_bytes
0044_partition_cnt 0048_partitioner 0054_offset_time 0057_invalid_topic 0060_op_prio
0063_clusterid 0067_empty_topic 0070_null_empty 0073_headers 0085_headers 0090_idempotence
0099_commit_metadata 0129_fetch_aborted_msgs 0130_store_offsets"

if [ ! -x "$src/tests/test-runner" ]; then
  echo "building librdkafka and its test suite ..."
  cargo fetch -q
  manifest=$(cargo metadata --format-version 1 | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="rdkafka-sys"))')
  if [ ! -f "$src/src/librdkafka.so" ]; then
    rm -rf "$src"
    mkdir -p "$(dirname "$src")"
    cp -r "$(dirname "$manifest")/librdkafka" "$src"
    (cd "$src" && ./configure --disable-ssl --disable-gssapi --disable-sasl --disable-curl --disable-zstd >/dev/null \
      && make -j2 -C src >/dev/null 2>&1)
  fi
  (cd "$src" && make -j2 -C src-cpp >/dev/null 2>&1 && make -j2 -C tests build >/dev/null 2>&1)
fi

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data" \
  --num-partitions 4 >"$work/broker.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
printf 'metadata.broker.list=127.0.0.1:%s\n' "$port" >"$work/test.conf"

# tests flagged TEST_F_LOCAL need no broker: not counted here
local_tests=" $(python3 -c 'import re,sys; t=open(sys.argv[1]).read(); print(" ".join(m.group(1) for m in re.finditer(r"_TEST\(\s*([0-9a-z_]+)\s*,([^)]*)", t) if "TEST_F_LOCAL" in m.group(2)))' "$src/tests/test.c") "
if [ "$mode" == "full" ]; then
  tests=$(grep -oE '^ *_TEST\([0-9a-z_]+' "$src/tests/test.c" | sed -E 's/.*_TEST\(//')
else
  tests=$QUICK
fi
pass=0; fail=0; skip=0; excluded=0
cd "$src/tests"
export LD_LIBRARY_PATH=../src:../src-cpp RDKAFKA_TEST_CONF="$work/test.conf" TEST_KAFKA_VERSION=4.0.0
for t in $tests; do
  if [[ "$local_tests" == *" $t "* ]]; then
    skip=$((skip+1)); echo "SKIP $t (local: no broker)"; continue
  fi
  case "$t" in
    # local-only variants (mock cluster, unit tests): not broker tests, and the runner's
    # substring match would also start the broker test they are named after
    *_local|*_mock|*_mock_*|*_ut) skip=$((skip+1)); echo "SKIP $t (local: no broker)"; continue ;;
    # manual tests (8xxx): not part of a suite run
    8[0-9][0-9][0-9]_*) skip=$((skip+1)); echo "SKIP $t (manual test)"; continue ;;
  esac
  if [ -n "${EXCLUDED[$t]:-}" ]; then
    excluded=$((excluded+1)); echo "EXCLUDED $t: ${EXCLUDED[$t]}"; continue
  fi
  # -L: tests that need a broker; -K: not those librdkafka marks as known to be flaky;
  # -E: no socket-emulation tests; -Q: quick mode
  if timeout 300 ./test-runner -Q -L -K -E "$t" >"$work/$t.log" 2>&1; then
    if grep -aq "Test $t SKIPPED\|Test $t[a-z_]* SKIPPED" "$work/$t.log" && ! grep -aq "Test $t[a-z_]* PASSED" "$work/$t.log"; then
      skip=$((skip+1)); echo "SKIP $t"
    elif grep -aq "PASSED" "$work/$t.log"; then
      pass=$((pass+1)); echo "PASS $t"
    else
      skip=$((skip+1)); echo "SKIP $t (local or not applicable)"
    fi
  else
    fail=$((fail+1)); echo "FAIL $t"
    grep -a -A2 '### Test' "$work/$t.log" | head -4 | sed 's/\x1b\[[0-9;]*m//g; s/^/     /'
  fi
done
applicable=$((pass+fail))
echo "librdkafka ($mode): $pass passed, $fail failed, $skip skipped by the suite, $excluded excluded; $( [ $applicable -gt 0 ] && echo "$((100*pass/applicable))%" || echo n/a) of the applicable tests pass"
[ "$fail" -eq 0 ]
