#!/usr/bin/env bash
# librdkafka's own test suite against the built binary. The suite is the one bundled with the
# rdkafka-sys crate's librdkafka source (the version the Rust tests use); it is built once into
# target/bench-tools (shared with benches/run.sh) and run against a fresh broker configured like
# librdkafka's "default" test scenario on one broker (auto-created topics, num.partitions=4), and
# the tests of its "noautocreate" scenario against a second broker with auto-creation off; the
# tests that need several brokers (replication factor 3, transactions across nodes) against a
# three-node cluster over etcd when etcd and java are installed (the driver's CLUSTER list; node
# n sits in rack RACKn, as 0101_fetch_from_follower expects).
# With rapidjson-dev installed when the suite is built (.ci/run installs it), the tests that
# check JSON statistics (0053, 0110) run too.
#
#   [LRK_SECURITY=sasl_ssl] [LRK_GROUP_PROTOCOL=consumer] [LRK_ONLY="0081_admin ..."] \
#     integration/librdkafka.sh [path/to/tiercel] [quick|full|cluster]
#
# LRK_GROUP_PROTOCOL=consumer runs the suite's consumers with group.protocol=consumer (KIP-848;
# the harness's TEST_CONSUMER_GROUP_PROTOCOL); a full run writes
# integration/librdkafka-results-consumer.txt.
#
# LRK_ONLY (quick mode) runs the tests it names instead of the QUICK set, without the cluster.
#
# LRK_SECURITY=sasl_ssl runs the suite over TLS and SASL: the brokers' only listener is SASL_SSL
# (a CA and certificate made with the openssl CLI, a SCRAM-SHA-512 user made with `tiercel user
# set`), the suite is built with OpenSSL into target/bench-tools/librdkafka-ssl, and its test.conf
# sets security.protocol, sasl.* and ssl.ca.location; the cluster tests are left out (nodes reach
# each other over PLAINTEXT). A full run writes integration/librdkafka-results-sasl_ssl.txt.
#
# Never in quick mode: the runner's -Q makes many tests return early from every sub-test not
# marked quick, so a "pass" would not be a run of the test. Both modes run every test they list
# in full, one test number per runner process, sequentially (-p1).
#
# quick (CI, a few minutes): the fixed QUICK set below.
# cluster: only the three-node cluster's tests (they also run in quick and full).
# full (on demand, long): every test that talks to a broker, except the EXCLUDED ones; it writes
#   integration/librdkafka-results.txt (commit, date, versions, flags, machine, summary, one line
#   per test).
#
# A test is PASS only when the runner printed "Test <name> PASSED" for it, it printed no failure
# for it and the runner exited 0 (or its failure is another test's). SKIP carries the runner's
# reason (the text after "SKIPPING TEST:") for a test it filtered or that skipped itself; FAIL is
# a FAILED/"### Test ... failed" line, a non-zero exit or a hang past the timeout (LRK_TEST_TIMEOUT
# seconds per test, default 900). Tests that need no broker (TEST_F_LOCAL, librdkafka's mock
# cluster, manual tests) are listed as SKIP but not counted. Exits non-zero if a test failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/tiercel}")
mode=${2:-quick}
case "$mode" in quick|full|cluster) ;; *) echo "usage: $0 [path/to/tiercel] [quick|full|cluster]" >&2; exit 2 ;; esac
root=$PWD
security=${LRK_SECURITY:-}
case "$security" in ""|sasl_ssl) ;; *) echo "LRK_SECURITY is empty or sasl_ssl" >&2; exit 2 ;; esac
src=$root/target/bench-tools/librdkafka${security:+-ssl}
ssl_flag=--disable-ssl
[ -n "$security" ] && ssl_flag=--enable-ssl

if [ ! -x "$src/tests/test-runner" ]; then
  echo "building librdkafka and its test suite ..."
  cargo fetch -q
  manifest=$(cargo metadata --format-version 1 | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="rdkafka-sys"))')
  if [ ! -f "$src/src/librdkafka.so" ]; then
    rm -rf "$src"
    mkdir -p "$(dirname "$src")"
    cp -r "$(dirname "$manifest")/librdkafka" "$src"
    (cd "$src" && ./configure "$ssl_flag" --disable-gssapi --disable-sasl --disable-curl --disable-zstd >/dev/null \
      && make -j2 -C src >/dev/null 2>&1)
  fi
  (cd "$src" && make -j2 -C src-cpp >/dev/null 2>&1 && make -j2 -C tests build >/dev/null 2>&1)
fi

work=$(mktemp -d)
pids=()
cluster_pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${cluster_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}" "${cluster_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if [ "$security" = sasl_ssl ]; then
  (cd "$work" && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=lrk CA" 2>/dev/null \
    && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=broker" 2>/dev/null \
    && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext \
    && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
      -extfile server.ext 2>/dev/null)
fi
# start_broker NAME EXTRA-FLAGS...: a fresh broker, its client config in $work/NAME.conf
start_broker() {
  local name=$1 port mport; shift
  port=$(free_port); mport=$(free_port)
  local listen=(--listen "127.0.0.1:$port")
  if [ "$security" = sasl_ssl ]; then
    echo lrk-secret | "$bin" user set --data-dir "$work/$name-data" --user lrk --password-stdin >/dev/null
    listen=(--listeners "SASL_SSL://127.0.0.1:$port" --ssl-certificate "$work/server.pem" --ssl-key "$work/server.key")
  fi
  "$bin" "${listen[@]}" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/$name-data" \
    --num-partitions 4 "$@" >"$work/$name-broker.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null || { echo "broker $name did not start" >&2; cat "$work/$name-broker.log" >&2; exit 1; }
  printf 'metadata.broker.list=127.0.0.1:%s\n' "$port" >"$work/$name.conf"
  if [ "$security" = sasl_ssl ]; then
    printf 'security.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\nsasl.username=lrk\nsasl.password=lrk-secret\nssl.ca.location=%s\n' \
      "$work/ca.pem" >>"$work/$name.conf"
  fi
}
# the ACL authorizer with everything open where no binding says otherwise (0081's ACL sub-tests
# create, describe and delete bindings on their own topics)
start_broker default --authorizer acl --allow-everyone-if-no-acl-found true
start_broker noautocreate --auto-create-topics-enable false

# The three-node clusters (one real etcd; a bucket in a local directory the nodes of a cluster
# share) for the tests in the driver's CLUSTER list: "cluster" as the default scenario and
# "cluster-noautocreate" with auto-creation off, each with its client config in $work/NAME.conf.
start_etcd() {
  local peer
  etcd_port=$(free_port); peer=$(free_port)
  etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "default=http://127.0.0.1:$peer" >"$work/etcd.log" 2>&1 &
  cluster_pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null && break; sleep 0.1; done
}
# start_cluster NAME EXTRA-FLAGS...
start_cluster() {
  local name=$1 list="" n port; shift
  for n in 1 2 3; do
    port=$(free_port)
    "$bin" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$(free_port)" --data-dir "$work/$name-node$n" \
      --node-id $n --etcd-endpoints "http://127.0.0.1:$etcd_port" --etcd-prefix "/$name" \
      --tier-url "file://$work/$name-tier/" --num-partitions 4 --rack "RACK$n" "$@" >"$work/$name-node$n.log" 2>&1 &
    cluster_pids+=($!)
    for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null || { echo "$name node $n did not start" >&2; cat "$work/$name-node$n.log" >&2; exit 1; }
    list="$list${list:+,}127.0.0.1:$port"
  done
  printf 'metadata.broker.list=%s\n' "$list" >"$work/$name.conf"
}
# 0098 drives the Java client's TransactionProducerCli through KAFKA_PATH: the client jars and a
# kafka-run-class.sh that runs a class with them
java_shim() {
  local jars; jars=$(integration/java_jars.sh)
  mkdir -p "$work/kafka/bin" "$work/kafka/libs"
  ln -sf "$jars"/*.jar "$work/kafka/libs/"
  printf '#!/usr/bin/env bash\nexec java -cp "$CLASSPATH:%s/*" "$@"\n' "$work/kafka/libs" >"$work/kafka/bin/kafka-run-class.sh"
  chmod +x "$work/kafka/bin/kafka-run-class.sh"
  export KAFKA_PATH=$work/kafka
}
if [ -z "$security" ] && [ -z "${LRK_ONLY:-}" ] && command -v etcd >/dev/null && command -v java >/dev/null; then
  start_etcd
  start_cluster cluster
  start_cluster cluster-noautocreate --auto-create-topics-enable false
  java_shim
fi

if [ -n "${LRK_GROUP_PROTOCOL:-}" ]; then
  export TEST_CONSUMER_GROUP_PROTOCOL=$LRK_GROUP_PROTOCOL
fi
dirty=""; [ -n "$(git status --porcelain 2>/dev/null)" ] && dirty="+dirty"
export LRK_MODE=$mode LRK_SRC=$src LRK_WORK=$work LRK_ROOT=$root LRK_SECURITY=$security \
  LRK_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty" \
  LRK_RDKAFKA_SYS="$(grep -A1 '^name = "rdkafka-sys"' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
python3 "$root/integration/librdkafka_driver.py"
