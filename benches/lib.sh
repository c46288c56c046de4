# Shared by the benchmark scripts (sourced): librdkafka's load generator, free ports, waiting
# for a broker, and where raw results go.

# rdkafka_performance, built once from the librdkafka source bundled in the rdkafka-sys crate (the
# version the tests use), into target/bench-tools, with zstd when libzstd-dev is installed
# (rebuilt once it is). Sets $perf.
build_perf() {
  local tools=$root/target/bench-tools
  perf=$tools/rdkafka_performance
  mkdir -p "$tools"
  local zstd=--disable-zstd
  if [ -f /usr/include/zstd.h ]; then zstd=--enable-zstd; fi
  if [ ! -x "$perf" ] || [ "$(cat "$tools/zstd" 2>/dev/null)" != "$zstd" ]; then
    echo "building rdkafka_performance ..."
    cargo fetch -q
    local manifest
    manifest=$(cargo metadata --format-version 1 | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="rdkafka-sys"))')
    rm -rf "$tools/librdkafka"
    cp -r "$(dirname "$manifest")/librdkafka" "$tools/librdkafka"
    (cd "$tools/librdkafka" && ./configure --disable-ssl --disable-gssapi --disable-sasl --disable-curl "$zstd" >/dev/null \
       && make -j"$(nproc)" libs >/dev/null 2>&1 && make -C examples rdkafka_performance >/dev/null 2>&1)
    cp "$tools/librdkafka/examples/rdkafka_performance" "$perf"
    echo "$zstd" >"$tools/zstd"
  fi
}

# CPU accounting, in clock ticks (getconf CLK_TCK): a process's user+system time, and the whole
# machine's busy time (user, nice, system, irq, softirq from /proc/stat: every process and kernel
# thread, the writeback threads that do part of a sync's work included; not the hypervisor's
# steal time, which is no work done here).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
system_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
# time the hypervisor ran something else while this machine's CPUs wanted to run (ticks)
system_steal() { awk '/^cpu / {print $9}' /proc/stat; }

# Touches as much fresh memory as a step is about to write, and frees it. On virtual machines
# whose memory the host hands back lazily (free pages returned to it within a minute), the first
# write to a page costs a fault on the host: page-cache writes to cold memory ran at 0.36 GB/s
# against 5 GB/s to memory just freed. Whichever listener or broker ran first in a round paid
# for that; writing and deleting a file of the size first leaves warm pages for the step.
# WARM=0 leaves it out (to see the effect).
warm_memory() { # dir bytes
  [ "${WARM:-1}" = 0 ] && return 0
  dd if=/dev/zero of="$1/warm-memory" bs=1M count=$(($2 / 1048576 + 64)) status=none
  rm -f "$1/warm-memory"
}

# Runs a command and writes the CPU-seconds it and its children used to $1; returns its status.
with_cpu() {
  python3 -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%f\n" % (u.ru_utime + u.ru_stime))
sys.exit(rc)' "$@"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The wall-clock time (epoch ms) at which the broker on port $1 first answers an ApiVersions
# request (gives up after $2 seconds, default 600).
ready_at() {
  python3 - "$1" "${2:-600}" <<'PY'
import socket, struct, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
start = time.monotonic()
# ApiVersions v0: api key 18, version 0, correlation id 7, client id "bench"
body = struct.pack(">hhih", 18, 0, 7, 5) + b"bench"
while time.monotonic() - start < limit:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = s.recv(8)
            if len(head) == 8 and struct.unpack(">ii", head)[1] == 7:
                print(int(time.time() * 1000))
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.002)
sys.exit(1)
PY
}

# A line of raw results (CSV) with the commit, date and machine it was measured at.
results_dir() {
  mkdir -p "$root/benches/results"
  echo "$root/benches/results"
}

machine() {
  echo "$(nproc) cpu $(awk '/MemTotal/ {printf "%.0fGiB", $2/1048576}' /proc/meminfo) $(uname -r)"
}
