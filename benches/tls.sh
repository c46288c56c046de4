#!/usr/bin/env bash
# What TLS and SASL cost: the same produce/consume workload over a PLAINTEXT, an SSL and a
# SASL_SSL (SCRAM-SHA-512) listener of one broker, with librdkafka's rdkafka_performance built
# with OpenSSL from the librdkafka source the tests use.
#
# For each round (REPEAT, default 3; the three listeners alternate within a round, each on a
# fresh topic): N records of SIZE bytes produced with acks=all, then consumed from the
# beginning. Reports the median records/s, MB/s and broker CPU-seconds per GB (utime+stime from
# /proc) of each listener and each one's MB/s as a share of PLAINTEXT's in the same round.
# Raw rows go to benches/results/tls.csv.
#
# Usage: [REPEAT=3] [SIZE=1024] [PARTS=4] [BIN=...] benches/tls.sh [records]   (default 500000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500000}
SIZE=${SIZE:-1024}
PARTS=${PARTS:-4}
REPEAT=${REPEAT:-3}
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
csv=$(results_dir)/tls.csv
[ -f "$csv" ] || echo "commit,date,machine,round,listener,records,size,partitions,produce_rps,produce_mbps,consume_rps,consume_mbps,broker_cpu_s_per_gb_produced,broker_cpu_s_per_gb_consumed" >"$csv"
commit=$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- src || echo "+dirty")
rows=$work/rows.txt
for round in $(seq "$REPEAT"); do
  for l in PLAINTEXT SSL SASL_SSL; do
    topic=bench-$l-$round
    # shellcheck disable=SC2046
    "$perf" -P -t "$topic" $(opts $l) -X topic.metadata.refresh.interval.ms=1000 -c 1 -s 10 -a -1 -q >/dev/null 2>&1 || true
    warm_memory "$work" $((N * SIZE))
    t0=$(cpu_ticks $pid)
    # shellcheck disable=SC2046
    "$perf" -P -t "$topic" $(opts $l) -s "$SIZE" -c "$N" -a -1 \
      -X linger.ms=5 -X queue.buffering.max.messages=1000000 -q >produce.txt 2>&1
    t1=$(cpu_ticks $pid)
    line=$(grep "messages produced" produce.txt | tail -1)
    p_ms=$(echo "$line" | sed -E 's/.* in ([0-9]+)ms.*/\1/')
    delivered=$(echo "$line" | sed -E 's/.*bytes\), ([0-9]+) delivered.*/\1/')
    [ "$delivered" = "$N" ] || { echo "$l: only $delivered of $N delivered"; cat produce.txt; tail broker.log; exit 1; }
    pflags=()
    for p in $(seq 0 $((PARTS - 1))); do pflags+=(-p "$p"); done
    start=$(date +%s%N)
    # shellcheck disable=SC2046
    "$perf" -C -t "$topic" $(opts $l) "${pflags[@]}" -o beginning -e -X enable.partition.eof=true -q >consume.txt 2>&1
    c_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    consumed=$(grep "consumed in" consume.txt | tail -1 | sed -E 's/^% ([0-9]+) messages.*/\1/')
    [ "$consumed" -ge "$N" ] || { echo "$l: consumed $consumed of $N"; cat consume.txt; exit 1; }
    t2=$(cpu_ticks $pid)
    row=$(python3 -c "
n, size, p_ms, c_ms, t0, t1, t2, hz = $N, $SIZE, $p_ms, $c_ms, $t0, $t1, $t2, $hz
gb = n * size / 1e9
print(n*1000/p_ms, n*size/p_ms/1000, n*1000/max(c_ms,1), n*size/max(c_ms,1)/1000, (t1-t0)/hz/gb, (t2-t1)/hz/gb)")
    echo "$round $l $row" >>"$rows"
    echo "$commit,$(date -u +%FT%TZ),$(machine),$round,$l,$N,$SIZE,$PARTS,$(echo "$row" | tr ' ' ',')" >>"$csv"
    echo "round $round $l: $row"
  done
done
python3 - "$rows" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r[1], []).append([float(x) for x in r[2:]])
plain = {r[0]: (float(r[3]), float(r[5])) for r in rows if r[1] == "PLAINTEXT"}
print("| listener | produce rec/s | produce MB/s | consume rec/s | consume MB/s | CPU-s/GB produced | CPU-s/GB consumed | produce MB/s vs PLAINTEXT | consume MB/s vs PLAINTEXT |")
print("|---|---|---|---|---|---|---|---|---|")
for l in ("PLAINTEXT", "SSL", "SASL_SSL"):
    cols = list(zip(*by[l]))
    m = [statistics.median(c) for c in cols]
    ratios = [(float(r[3]) / plain[r[0]][0], float(r[5]) / plain[r[0]][1]) for r in rows if r[1] == l]
    pr = sorted(x for x, _ in ratios); cr = sorted(y for _, y in ratios)
    print(f"| {l} | {m[0]:,.0f} | {m[1]:,.1f} | {m[2]:,.0f} | {m[3]:,.1f} | {m[4]:.2f} | {m[5]:.2f} | "
          f"{statistics.median(pr):.0%} ({pr[0]:.0%}–{pr[-1]:.0%}) | {statistics.median(cr):.0%} ({cr[0]:.0%}–{cr[-1]:.0%}) |")
PY
