#!/usr/bin/env bash
# What TLS and SASL cost: the same produce/consume workload over a PLAINTEXT, an SSL and a
# SASL_SSL (SCRAM-SHA-512) listener of one broker, with two clients: librdkafka's
# rdkafka_performance built with OpenSSL from the librdkafka source the tests use, and the Java
# client (kafka-clients 4.3.0, benches/ClientThroughput.java).
#
# For each round (REPEAT, default 3), each client (CLIENTS, default "rdkafka java") and each
# listener in turn, on a fresh topic: N records of SIZE bytes produced with acks=all, then
# consumed from the beginning. Reports the median MB/s of each, its share of the same client's
# PLAINTEXT MB/s in the same round, and the CPU-seconds per GB of the broker (utime+stime from
# /proc) and of the client (the Java client counts from its first send, leaving out the JVM's
# start-up). Raw rows go to benches/results/tls.csv.
#
# Usage: [REPEAT=3] [CLIENTS="rdkafka java"] [SIZE=1024] [PARTS=4] [BIN=...] benches/tls.sh [records]   (default 500000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500000}
SIZE=${SIZE:-1024}
PARTS=${PARTS:-4}
REPEAT=${REPEAT:-3}
CLIENTS=${CLIENTS:-rdkafka java}
root=$PWD
# shellcheck source=benches/lib.sh
source benches/lib.sh
command -v openssl >/dev/null || { echo "needs the openssl CLI"; exit 1; }

# rdkafka_performance with TLS and the builtin SCRAM (the one run.sh builds has neither)
tools=$root/target/bench-tools/ssl
perf=$tools/rdkafka_performance
if [ ! -x "$perf" ]; then
  [ -f /usr/include/openssl/ssl.h ] || { echo "needs OpenSSL headers (apt-get install libssl-dev)"; exit 1; }
  echo "building rdkafka_performance with OpenSSL ..."
  mkdir -p "$tools"
  cargo fetch -q
  manifest=$(cargo metadata --format-version 1 | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="rdkafka-sys"))')
  rm -rf "$tools/librdkafka"
  cp -r "$(dirname "$manifest")/librdkafka" "$tools/librdkafka"
  (cd "$tools/librdkafka" && ./configure --enable-ssl --disable-gssapi --disable-sasl --disable-curl --disable-zstd >/dev/null \
     && make -j"$(nproc)" libs >/dev/null 2>&1 && make -C examples rdkafka_performance >/dev/null 2>&1)
  cp "$tools/librdkafka/examples/rdkafka_performance" "$perf"
fi

if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin=${BIN:-$root/target/release/tiercel}
work=$(mktemp -d)
pid=""
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=broker" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
echo bench-secret | "$bin" user set --data-dir data --user bench --password-stdin >/dev/null
pp=$(free_port); sp=$(free_port); ssp=$(free_port); mport=$(free_port)
"$bin" --listeners "PLAINTEXT://127.0.0.1:$pp,SSL://127.0.0.1:$sp,SASL_SSL://127.0.0.1:$ssp" \
  --ssl-certificate server.pem --ssl-key server.key --num-partitions "$PARTS" \
  --metrics-listen "127.0.0.1:$mport" --data-dir data --log-level warn >broker.log 2>&1 &
pid=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$ssp) 2>/dev/null && break; sleep 0.1; done

hz=$(getconf CLK_TCK)
opts() { # listener -> rdkafka_performance arguments
  case $1 in
    PLAINTEXT) echo "-b 127.0.0.1:$pp";;
    SSL) echo "-b 127.0.0.1:$sp -X security.protocol=SSL -X ssl.ca.location=$work/ca.pem";;
    SASL_SSL) echo "-b 127.0.0.1:$ssp -X security.protocol=SASL_SSL -X ssl.ca.location=$work/ca.pem -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=bench -X sasl.password=bench-secret";;
  esac
}
java_opts() { # listener -> the Java client's bootstrap and settings, one per line
  case $1 in
    PLAINTEXT) echo "127.0.0.1:$pp";;
    SSL) printf '%s\n' "127.0.0.1:$sp" security.protocol=SSL ssl.truststore.type=PEM "ssl.truststore.location=$work/ca.pem";;
    SASL_SSL) printf '%s\n' "127.0.0.1:$ssp" security.protocol=SASL_SSL ssl.truststore.type=PEM "ssl.truststore.location=$work/ca.pem" \
      sasl.mechanism=SCRAM-SHA-512 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="bench" password="bench-secret";';;
  esac
}
if [[ " $CLIENTS " == *" java "* ]]; then jars=$("$root/integration/java_jars.sh"); fi
java_run() { # produce|consume listener topic -> "records ms cpu_s"
  local args
  mapfile -t args < <(java_opts "$2")
  java -cp "$jars/*" "$root/benches/ClientThroughput.java" "$1" "${args[0]}" "$3" "$N" "$SIZE" "${args[@]:1}" 2>>java.err | tail -1
}
csv=$(results_dir)/tls.csv
header="commit,date,machine,round,listener,records,size,partitions,produce_rps,produce_mbps,consume_rps,consume_mbps,broker_cpu_s_per_gb_produced,broker_cpu_s_per_gb_consumed,client,client_cpu_s_per_gb_produced,client_cpu_s_per_gb_consumed"
if [ ! -f "$csv" ]; then
  echo "$header" >"$csv"
elif [ "$(head -1 "$csv")" != "$header" ]; then # rows from before the client columns: rdkafka's
  { echo "$header"; tail -n +2 "$csv" | sed 's/$/,rdkafka,,/'; } >"$csv.new" && mv "$csv.new" "$csv"
fi
commit=$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- src || echo "+dirty")
rows=$work/rows.txt
TIMEFORMAT=%U+%S
for round in $(seq "$REPEAT"); do
  for client in $CLIENTS; do
    for l in PLAINTEXT SSL SASL_SSL; do
      topic=bench-$client-$l-$round
      if [ "$client" = rdkafka ]; then
        # shellcheck disable=SC2046
        "$perf" -P -t "$topic" $(opts $l) -X topic.metadata.refresh.interval.ms=1000 -c 1 -s 10 -a -1 -q >/dev/null 2>&1 || true
      fi
      warm_memory "$work" $((N * SIZE))
      t0=$(cpu_ticks $pid)
      if [ "$client" = rdkafka ]; then
        # shellcheck disable=SC2046
        { time "$perf" -P -t "$topic" $(opts $l) -s "$SIZE" -c "$N" -a -1 \
          -X linger.ms=5 -X queue.buffering.max.messages=1000000 -q >produce.txt 2>&1; } 2>ptime.txt
        line=$(grep "messages produced" produce.txt | tail -1)
        p_ms=$(echo "$line" | sed -E 's/.* in ([0-9]+)ms.*/\1/')
        delivered=$(echo "$line" | sed -E 's/.*bytes\), ([0-9]+) delivered.*/\1/')
        p_cpu=$(python3 -c "print($(cat ptime.txt))")
      else
        read -r delivered p_ms p_cpu <<<"$(java_run produce $l "$topic")"
      fi
      t1=$(cpu_ticks $pid)
      [ "${delivered:-0}" = "$N" ] || { echo "$client $l: only ${delivered:-0} of $N delivered"; tail produce.txt java.err 2>/dev/null; tail broker.log; exit 1; }
      if [ "$client" = rdkafka ]; then
        pflags=()
        for p in $(seq 0 $((PARTS - 1))); do pflags+=(-p "$p"); done
        start=$(date +%s%N)
        # shellcheck disable=SC2046
        { time "$perf" -C -t "$topic" $(opts $l) "${pflags[@]}" -o beginning -e -X enable.partition.eof=true -q >consume.txt 2>&1; } 2>ctime.txt
        c_ms=$(( ($(date +%s%N) - start) / 1000000 ))
        consumed=$(grep "consumed in" consume.txt | tail -1 | sed -E 's/^% ([0-9]+) messages.*/\1/')
        c_cpu=$(python3 -c "print($(cat ctime.txt))")
      else
        read -r consumed c_ms c_cpu <<<"$(java_run consume $l "$topic")"
      fi
      [ "${consumed:-0}" -ge "$N" ] || { echo "$client $l: consumed ${consumed:-0} of $N"; tail consume.txt java.err 2>/dev/null; exit 1; }
      t2=$(cpu_ticks $pid)
      row=$(python3 -c "
n, size, p_ms, c_ms, t0, t1, t2, hz = $N, $SIZE, $p_ms, $c_ms, $t0, $t1, $t2, $hz
gb = n * size / 1e9
print(n*1000/p_ms, n*size/p_ms/1000, n*1000/max(c_ms,1), n*size/max(c_ms,1)/1000, (t1-t0)/hz/gb, (t2-t1)/hz/gb, $p_cpu/gb, $c_cpu/gb)")
      echo "$round $client $l $row" >>"$rows"
      echo "$commit,$(date -u +%FT%TZ),$(machine),$round,$l,$N,$SIZE,$PARTS,$(echo "$row" | cut -d' ' -f1-6 | tr ' ' ','),$client,$(echo "$row" | cut -d' ' -f7-8 | tr ' ' ',')" >>"$csv"
      echo "round $round $client $l: $row"
    done
  done
done
python3 - "$rows" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault((r[1], r[2]), []).append([float(x) for x in r[3:]])
plain = {(r[0], r[1]): (float(r[4]), float(r[6])) for r in rows if r[2] == "PLAINTEXT"}
print("| client | listener | produce MB/s | vs PLAINTEXT | consume MB/s | vs PLAINTEXT | broker CPU-s/GB produced | consumed | client CPU-s/GB produced | consumed |")
print("|---|---|---|---|---|---|---|---|---|---|")
for client in dict.fromkeys(r[1] for r in rows):
    for l in ("PLAINTEXT", "SSL", "SASL_SSL"):
        m = [statistics.median(c) for c in zip(*by[(client, l)])]
        ratios = [(float(r[4]) / plain[(r[0], client)][0], float(r[6]) / plain[(r[0], client)][1])
                  for r in rows if r[1] == client and r[2] == l]
        pr = sorted(x for x, _ in ratios); cr = sorted(y for _, y in ratios)
        print(f"| {client} | {l} | {m[1]:,.0f} | {statistics.median(pr):.0%} ({pr[0]:.0%}–{pr[-1]:.0%}) | "
              f"{m[3]:,.0f} | {statistics.median(cr):.0%} ({cr[0]:.0%}–{cr[-1]:.0%}) | {m[4]:.2f} | {m[5]:.2f} | {m[6]:.2f} | {m[7]:.2f} |")
PY
