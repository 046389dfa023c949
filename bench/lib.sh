# shellcheck shell=bash
# Helpers shared by the on-demand benchmarks (compare.sh, sizes.sh) and
# scripts/dnsperf.sh: sourced by them, never run alone, never part of
# make test.
#
# What they share is how a run is made and judged:
#   - the server runs on core SERVER_CPU, dnsperf on core PERF_CPU;
#   - every name of the query file is checked with dig before a run;
#   - a full-speed run reports queries/s (dnsperf), the server's CPU per
#     query (its CPU time over the queries answered) and how busy its core
#     was; a run at a fixed rate reports the mean and the p99 latency;
#   - a run is discarded and made again when something outside the
#     benchmark took CPU during it (see measure).
#
# Settings (environment): SECS (10) seconds a run, REPS (3) runs kept per
# figure (rounds), MAX_TRIES (2*REPS) tries for one run, NOISE (0.25) the share of one
# core that outside load may take during a run, RETRY_WAIT (10) seconds
# to wait after a disturbed run, AWAKE (1: keep the cores from halting
# during latency runs, see awake_start; 0: do not), SERVER_CPU (0),
# PERF_CPU (1), CLIENTS (4) and OUTSTANDING (500) for dnsperf,
# PROBE_RATE (1000) and LATENCY (probe, or load) for the latency runs (see
# run_rate), BENCH_DEBUG (set: print what every run's CPU time went to,
# and each latency run's percentiles).

SECS=${SECS:-10}
REPS=${REPS:-3}
MAX_TRIES=${MAX_TRIES:-$((2 * REPS))}
# On the quiet 2-core VM the machine's busy time still exceeds what the
# benchmark's processes are charged by 0.12 to 0.17 of a core while the
# server runs at 70% (kernel work done outside any process, and
# /proc/stat counting by ticks where process times are exact): NOISE is
# above that, and far below a hog or a test run of someone else's.
NOISE=${NOISE:-0.25}
RETRY_WAIT=${RETRY_WAIT:-10}
AWAKE=${AWAKE:-1}
SERVER_CPU=${SERVER_CPU:-0}
PERF_CPU=${PERF_CPU:-1}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-500}
TCK=$(getconf CLK_TCK)
PATH=$PATH:/usr/sbin

# bench_setup "command=package" ...: checks the machine, installs the
# Debian packages whose command is missing, and makes $tmp (removed on
# exit, with every process started through track stopped).
bench_setup() {
  (($(nproc) >= 2)) || { echo "bench: needs at least 2 cores" >&2; exit 1; }
  local need=() cp
  for cp in "$@"; do
    command -v "${cp%%=*}" >/dev/null || need+=("${cp#*=}")
  done
  if ((${#need[@]})); then
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    echo "bench: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q >/dev/null || true
    # The packages' init scripts would start system-wide daemons on port
    # 53; we start our own.
    RUNLEVEL=1 "${sudo[@]}" apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  fi
  tmp=$(mktemp -d)
  # dnsperf -v writes a line per reply: to memory, not to a disk.
  shm=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
  perf_out=$shm/perf.out
  tracked=()
  trap bench_cleanup EXIT
}

# track pid: stop pid (and whatever it started) on exit.
track() { tracked+=("$1"); }

bench_cleanup() {
  local p
  for p in "${tracked[@]}"; do stop_tree "$p"; done
  rm -rf "$tmp" "$shm"
}

# descendants pid: the PID and those of all its descendants.
descendants() {
  local p
  echo "$1"
  for p in $(pgrep -P "$1" 2>/dev/null || true); do descendants "$p"; done
}

# stop_tree pid: TERM to pid and its descendants, KILL to those still
# there after 5 s. Only processes this script started are ever signalled.
stop_tree() {
  local ps p alive
  mapfile -t ps < <(descendants "$1")
  for p in "${ps[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for p in "${ps[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${ps[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait "$1" 2>/dev/null || true
}

# serial is the SOA serial of the benchmarks' zone bench.test.
serial=2024010101

# write_static_zone FILE: the static names of bench.test, which every
# server of every benchmark serves.
write_static_zone() {
  cat >"$1" <<EOF
\$ORIGIN bench.test.
\$TTL 3600
@     IN SOA ns1.bench.test. hostmaster.bench.test. $serial 7200 3600 1209600 300
@     IN NS  ns1.bench.test.
ns1   IN A   127.0.0.1
mail  IN A   192.0.2.25
api   IN A   192.0.2.26
cdn   IN A   192.0.2.27
EOF
}

# freeport: a port free on 127.0.0.1 for both UDP and TCP.
freeport() {
  python3 - <<'PY'
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
PY
}

# start_backend port addr...: healthy HTTP endpoints (200 on every path)
# on port of each address, in one process of ours; returns once they all
# accept connections. Sets BACKEND_PID.
start_backend() {
  local port=$1 a
  shift
  cat >"$tmp/backend.py" <<'PY'
import sys, threading, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
        except OSError:
            pass  # a checker that hung up early
    def log_message(self, *a): pass
port = int(sys.argv[1])
servers = [http.server.ThreadingHTTPServer((a, port), H) for a in sys.argv[2:]]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
PY
  # On the load generator's core: the server's core is the server's
  # alone, and the endpoints answer its health checks (every 500 ms for
  # gslbd) on the other, as they would from another machine.
  taskset -c "$PERF_CPU" python3 "$tmp/backend.py" "$port" "$@" 2>"$tmp/backend.log" &
  BACKEND_PID=$!
  track "$BACKEND_PID"
  for a in "$@"; do
    for _ in $(seq 100); do
      (exec 3<>"/dev/tcp/$a/$port") 2>/dev/null && continue 2
      sleep 0.05
    done
    echo "bench: the HTTP endpoints did not start:" >&2
    cat "$tmp/backend.log" >&2
    exit 1
  done
}

# build_gslbd: the binary under test, built once into $tmp.
build_gslbd() { go build -o "$tmp/gslbd" ./cmd/gslbd; }

# start_gslbd port zonefile servicesfile [name]: gslbd on
# 127.0.0.1:port, one P (GOMAXPROCS=1: one UDP socket, one reader),
# pinned to SERVER_CPU. Sets SERVER_PID; its config is $tmp/name.yaml
# and its log $tmp/name.log (name: gslbd by default).
start_gslbd() {
  local name=${4:-gslbd}
  cat >"$tmp/$name.yaml" <<EOF
node: {name: bench, site: dc1}
dns:
  listen: ["127.0.0.1:$1"]
admin: {disabled: true}
zones:
  - origin: bench.test.
    file: $2
services: $3
log: {level: warn}
EOF
  GOMAXPROCS=1 taskset -c "$SERVER_CPU" "$tmp/gslbd" serve -config "$tmp/$name.yaml" >"$tmp/$name.log" 2>&1 &
  SERVER_PID=$!
  track "$SERVER_PID"
}

# wait_answer port name qname [seconds]: waits until the server answers
# qname A with a loopback address (30 s by default).
wait_answer() {
  local deadline=$((SECONDS + ${4:-30}))
  while ((SECONDS < deadline)); do
    [[ $(dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 "$3" A 2>/dev/null | head -1) =~ ^127\. ]] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: $2 did not answer $3; its log:" >&2
  cat "$tmp/$2.log" >&2 2>/dev/null || true
  return 1
}

# check_answers port name expectations [quiet]: every line "qname want"
# of the file expectations (want: the sorted A addresses, space
# separated, or NXDOMAIN) must be answered so, authoritatively. Returns 1
# on the first wrong answer, saying which unless quiet is set.
check_answers() {
  local port=$1 name=$2 q want out status ans
  while read -r q want; do
    out=$(dig +norec +time=2 +tries=2 -p "$port" @127.0.0.1 "$q" A 2>&1) || true
    status=$(sed -n 's/.*status: \([A-Z]*\).*/\1/p' <<<"$out" | head -1)
    ans=$(awk '/^;; ANSWER SECTION:/ { a = 1; next } /^$/ { a = 0 } a && $4 == "A" { print $5 }' <<<"$out" | sort | tr '\n' ' ' | sed 's/ $//')
    if [[ $want == NXDOMAIN ]]; then
      [[ $status == NXDOMAIN ]] && grep -q 'flags:[^;]* aa' <<<"$out" && continue
    else
      [[ $status == NOERROR && $ans == "$want" ]] && grep -q 'flags:[^;]* aa' <<<"$out" && continue
    fi
    [[ -n ${4:-} ]] || echo "bench: $name answers $q with ${status:-no reply} [${ans}], want $want (authoritative)" >&2
    return 1
  done <"$3"
}

# verify port name expectations [settle]: check_answers, retried for up
# to settle seconds (health checks coming up); a server still wrong then
# stops the benchmark, loudly, with its log, rather than yielding a
# fast-looking line.
verify() {
  local deadline=$((SECONDS + ${4:-0}))
  while ((SECONDS < deadline)); do
    check_answers "$1" "$2" "$3" quiet && return 0
    sleep 0.2
  done
  check_answers "$1" "$2" "$3" && return 0
  echo "bench: $2's log:" >&2
  cat "$tmp/$2.log" >&2 2>/dev/null || true
  exit 1
}

# tree_ticks pid: CPU ticks (user + system) of pid and its descendants
# (NSD answers from a grandchild). The kernel's work for the server's
# packets done in its context (loopback delivery in softirq included) is
# in its system time: this kernel has no IRQ time accounting.
tree_ticks() {
  local p t=0 x
  for p in $(descendants "$1"); do
    # utime and stime, counted after the command name, which may hold
    # spaces ("nsd: server 1").
    x=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk -v f="${2:-}" '{print f == "user" ? $12 : f == "sys" ? $13 : $12 + $13}')
    t=$((t + ${x:-0}))
  done
  echo "$t"
}

# machine_ticks: ticks the machine's CPUs spent on anything (user, nice,
# system, irq, softirq, and steal: time the hypervisor gave to another
# guest). guest time is part of user already; idle and iowait are idle.
# Printed with the time since boot in seconds, read together, so that
# the busy time and the wall time cover the same window.
machine_ticks() { awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9 } FILENAME == "/proc/uptime" { print b, $1 }' /proc/stat /proc/uptime; }

# kernel_ticks: CPU ticks of the kernel threads that finish packet
# delivery when softirqs pile up (ksoftirqd): the benchmark's own load.
kernel_ticks() {
  local p t=0 x
  for p in $(pgrep '^ksoftirqd/' || true); do
    x=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null)
    t=$((t + ${x:-0}))
  done
  echo "$t"
}

# proc_cpu: "pid ticks command" of every process, for naming what
# disturbed a run.
proc_cpu() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '{
    l = $0; i = index(l, "("); j = 0
    for (k = length(l); k > i; k--) if (substr(l, k, 1) == ")") { j = k; break }
    split(substr(l, j + 2), f, " ")
    print $1, f[12] + f[13], substr(l, i + 1, j - i - 1) }'
}

# awake_start, awake_stop: a busy loop at the idle scheduling policy
# (SCHED_IDLE) on each of the two cores, which keeps them from halting.
# On a virtual machine a halted virtual CPU takes the host's time to wake
# (here a sleep of 1 ms overran by 1.6 ms at the 99th percentile on an
# idle machine, 0.15 ms with the loops running): that, not the server,
# would make the latency at half rate. The loops run only when nothing
# else wants the core, and their CPU time counts as the benchmark's own.
AWAKE_PIDS=()
awake_start() {
  local c
  for c in "$SERVER_CPU" "$PERF_CPU"; do
    # Bounded, in case the script is killed before it stops them.
    taskset -c "$c" chrt --idle 0 timeout $((SECS + 60)) sh -c 'while :; do :; done' &
    AWAKE_PIDS+=($!)
    track "$!"
  done
}
awake_stop() {
  local p
  for p in "${AWAKE_PIDS[@]}"; do stop_tree "$p"; done
  AWAKE_PIDS=()
}
awake_ticks() {
  local p t=0
  for p in "${AWAKE_PIDS[@]}"; do t=$((t + $(tree_ticks "$p"))); done
  echo "$t"
}

# wakeup_latency: the 99th percentile of how much a sleep of 1 ms
# overruns on each core (2,000 sleeps), in ms: the floor under any
# latency measured on this machine.
wakeup_latency() {
  local c out=()
  for c in "$SERVER_CPU" "$PERF_CPU"; do
    out+=("$(taskset -c "$c" python3 -c '
import time
d = []
for _ in range(2000):
    t = time.perf_counter(); time.sleep(0.001); d.append(time.perf_counter() - t - 0.001)
d.sort(); print("%.2f" % (d[int(len(d) * 0.99)] * 1000))')")
  done
  echo "core $SERVER_CPU ${out[0]} ms, core $PERF_CPU ${out[1]} ms"
}

# measure server_pid dnsperf-args...: one dnsperf run pinned to PERF_CPU,
# its output in $perf_out. Sets RUN_WALL (s), RUN_SERVER (ticks of
# the server's tree), RUN_OTHERS (share of one core taken by anything
# but the server, dnsperf, the HTTP endpoints and ksoftirqd) and
# RUN_DISTURBED (1 when RUN_OTHERS > NOISE).
#
# Why not "machine minus server minus one core for dnsperf": dnsperf
# does not keep its core busy all the time, its run is longer than -l
# (start-up, the wait for the last replies), and loopback work lands in
# ksoftirqd when softirqs pile up. So every part of the benchmark is
# measured: dnsperf's CPU time from its rusage (bash times), the server's
# and the endpoints' from /proc, and what is left of the machine's busy
# time is load from outside.
measure() {
  local pid=$1 m0 m1 s0 s1 su0 su1 b0 b1 k0 k1 w0 w1 perf
  shift
  # The processes' counters are read outside the machine's window (the
  # commands that read them take time of their own, much of it on a
  # busy machine), so that no part of it counts twice.
  proc_cpu >"$tmp/ps0"
  s0=$(tree_ticks "$pid") b0=$(tree_ticks "$BACKEND_PID") k0=$(($(kernel_ticks) + $(awake_ticks))) su0=$(tree_ticks "$pid" user)
  read -r m0 w0 < <(machine_ticks)
  (
    taskset -c "$PERF_CPU" dnsperf "$@" >"$perf_out" 2>&1 || true
    times >"$tmp/perf.times"
  )
  read -r m1 w1 < <(machine_ticks)
  s1=$(tree_ticks "$pid") b1=$(tree_ticks "$BACKEND_PID") k1=$(($(kernel_ticks) + $(awake_ticks))) su1=$(tree_ticks "$pid" user)
  proc_cpu >"$tmp/ps1"
  # times: the subshell's line, then its children's (dnsperf): "0m1.234s 0m0.567s".
  perf=$(awk -v tck="$TCK" 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print int((u[1] * 60 + u[2] + s[1] * 60 + s[2]) * tck + 0.5) }' "$tmp/perf.times")
  RUN_WALL=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", b - a }')
  RUN_SERVER=$((s1 - s0))
  RUN_OTHERS=$(awk -v o=$((m1 - m0 - (s1 - s0) - perf - (b1 - b0) - (k1 - k0))) -v tck="$TCK" -v w="$RUN_WALL" \
    'BEGIN { o = o / tck / w; if (o < 0) o = 0; printf "%.3f", o }')
  if [[ -n ${BENCH_DEBUG:-} ]]; then
    echo "bench: run of ${RUN_WALL}s, in ticks: machine $((m1 - m0)), server $((s1 - s0)) ($((su1 - su0)) user), dnsperf $perf, endpoints $((b1 - b0)), ksoftirqd and awake loops $((k1 - k0)); outside $RUN_OTHERS of a core (machine - server - one core: $(awk -v o=$((m1 - m0 - (s1 - s0))) -v tck="$TCK" -v w="$RUN_WALL" 'BEGIN { printf "%.3f", o / tck / w - 1 }'))" >&2
  fi
  RUN_DISTURBED=$(awk -v o="$RUN_OTHERS" -v n="$NOISE" 'BEGIN { print (o > n) ? 1 : 0 }')
  if ((RUN_DISTURBED)); then
    # Name the biggest consumers outside the benchmark (this script and
    # its descendants, ksoftirqd); processes that came and went during
    # the run cannot be named.
    RUN_CULPRITS=$(awk -v tck="$TCK" -v ours="$(descendants $$ | tr '\n' ' ')" '
        BEGIN { n = split(ours, o, " "); for (i = 1; i <= n; i++) mine[o[i]] = 1 }
        NR == FNR { t[$1] = $2; next }
        !($1 in mine) && $3 !~ /^ksoftirqd\// { d = $2 - (($1 in t) ? t[$1] : 0); c = $3; for (i = 4; i <= NF; i++) c = c "_" $i
          if (d >= tck / 20) printf "%.2f %s[%s]\n", d / tck, c, $1 }' "$tmp/ps0" "$tmp/ps1" |
      sort -gr | head -4 | awk '{ printf "%s%s s %s", (NR > 1 ? ", " : ""), $1, $2 }')
  fi
}

# check_perf name: dnsperf's replies must all be NOERROR or NXDOMAIN,
# and (nearly) none lost: at most the OUTSTANDING in flight when the
# time is up, plus 1%.
check_perf() {
  local codes lost sent
  codes=$(awk -F: '/^[[:space:]]*Response codes:/{print $2}' "$perf_out")
  sent=$(awk '/^[[:space:]]*Queries sent:/{print $3}' "$perf_out")
  lost=$(awk '/^[[:space:]]*Queries lost:/{print $3}' "$perf_out")
  if grep -Eq 'SERVFAIL|REFUSED|FORMERR|NOTIMP' <<<"$codes" || [[ -z $sent || -z $lost ]] || ((lost > OUTSTANDING + sent / 100)); then
    echo "bench: $1: dnsperf got${codes}, ${lost:-?} of ${sent:-?} lost; not a fair run. dnsperf said:" >&2
    grep -v '^> ' "$perf_out" >&2
    exit 1
  fi
}

# run_full port pid name queries expectations: verify, then one run at
# full speed. Prints "qps cpu_per_query_us server_core_busy others" or
# "disturbed others culprits".
run_full() {
  local port=$1 pid=$2 name=$3 qps n
  verify "$port" "$name" "$5"
  measure "$pid" -s 127.0.0.1 -p "$port" -d "$4" -l "$SECS" -t 2 -c "$CLIENTS" -q "$OUTSTANDING"
  if ((RUN_DISTURBED)); then
    echo "disturbed $RUN_OTHERS ${RUN_CULPRITS:-}"
    return
  fi
  check_perf "$name"
  qps=$(awk '/Queries per second:/{print $4}' "$perf_out")
  n=$(awk '/Queries completed:/{print $3}' "$perf_out")
  # Core busy: CPU per query times queries/s, over dnsperf's run time
  # (the wall time also holds its start and its wait for lost replies).
  awk -v q="$qps" -v n="$n" -v s="$RUN_SERVER" -v tck="$TCK" -v o="$RUN_OTHERS" \
    'BEGIN { c = s / tck / n; printf "%.0f %.3f %.3f %s\n", q, c * 1e6, c * q, o }'
}

# run_rate port pid name queries expectations rate: verify, then one run
# at rate queries/s (the load) with a latency probe beside it. Prints
# "mean_ms p99_ms others" or "disturbed others culprits".
#
# The load is one dnsperf at the rate; the probe is a second dnsperf on the
# same core sending PROBE_RATE (1000) queries/s from the same file, one at
# a time, every reply's latency written by -v to memory, at a real-time
# priority (SCHED_FIFO, when allowed: root or CAP_SYS_NICE) so that the
# load generator does not hold it up. What it measures is what a resolver
# asking this server sees while the server answers half its maximum rate:
# the path, the kernel and the server. The load generator's own latency
# (LATENCY=load: the old way, the load dnsperf's own -v lines) is mostly
# its own queue: at half of its own maximum rate, with a line written per
# reply, its core is nearly full, and every server measured that way,
# gdnsd, NSD and Knot as much as gslbd, showed a p99 of 2-3 ms. The mean
# is the load's own (dnsperf's Average Latency), over all its queries.
# A query lost counts as the timeout (2 s: nothing comes back later than
# that over loopback).
PROBE_RATE=${PROBE_RATE:-1000}
LATENCY=${LATENCY:-probe}
run_rate() {
  local port=$1 pid=$2 name=$3 rate=$6 probe_pid="" fifo=() mean
  verify "$port" "$name" "$5"
  ((AWAKE)) && awake_start
  if [[ $LATENCY == load ]]; then
    measure "$pid" -s 127.0.0.1 -p "$port" -d "$4" -l "$SECS" -t 2 -c "$CLIENTS" -q "$OUTSTANDING" -Q "$rate" -v
    cp "$perf_out" "$shm/probe.out"
  else
    chrt -f 1 true 2>/dev/null && fifo=(chrt -f 1)
    # The probe starts first and ends last, so it covers the whole load.
    taskset -c "$PERF_CPU" "${fifo[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$4" -l $((SECS + 1)) -t 2 \
      -c 1 -q 1 -Q "$PROBE_RATE" -v >"$shm/probe.out" 2>&1 &
    probe_pid=$!
    track "$probe_pid"
    sleep 0.5
    measure "$pid" -s 127.0.0.1 -p "$port" -d "$4" -l "$SECS" -t 2 -c "$CLIENTS" -q "$OUTSTANDING" -Q "$rate"
    wait "$probe_pid" || true
  fi
  awake_stop
  if ((RUN_DISTURBED)); then
    echo "disturbed $RUN_OTHERS ${RUN_CULPRITS:-}"
    return
  fi
  check_perf "$name"
  if [[ -n ${BENCH_DEBUG:-} ]]; then
    echo "bench: latency probe ${fifo[*]:-(no real-time priority)}: $(grep -E 'Queries (sent|lost)' "$shm/probe.out" | tr -s ' \n' ' ')" >&2
  fi
  mean=$(awk '/Average Latency/ { print $4 * 1000 }' "$perf_out")
  # dnsperf -v puts the per-query lines and the summary on stdout.
  awk '$1 == ">" && $2 == "T" { print 2; next } $1 == ">" && NF >= 5 { print $NF }' "$shm/probe.out" >"$shm/lat"
  sort -g "$shm/lat" -o "$shm/lat"
  if [[ -n ${BENCH_DEBUG:-} ]]; then
    awk '{ a[NR] = $1 } END { if (NR) printf "bench: %s: latency, ms: p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f\n", name,
        a[int(NR * .5 + .5)] * 1000, a[int(NR * .9 + .5)] * 1000, a[int(NR * .99 + .5)] * 1000, a[int(NR * .999 + .5)] * 1000, a[NR] * 1000 }' name="$name" "$shm/lat" >&2
  fi
  awk -v o="$RUN_OTHERS" -v m="$mean" '{ a[NR] = $1; s += $1 } END {
      if (NR == 0) { print "- - " o; exit }
      if (m == "") m = s / NR * 1000
      i = int(NR * 0.99 + 0.5); if (i < 1) i = 1
      printf "%.3f %.3f %s\n", m, a[i] * 1000, o }' "$shm/lat"
  rm -f "$shm/lat" "$shm/probe.out"
}

# keep_one file what...: runs the command what... until a run is not
# disturbed (at most MAX_TRIES tries, waiting RETRY_WAIT seconds after a
# disturbed one) and appends that run's result line to file. For
# interleaved rounds (one run of each server, or size, per round), which
# put the machine's slow drifts on every contender alike rather than on
# whichever ran while the drift lasted. Returns 1 when every try was
# disturbed.
keep_one() {
  local file=$1 r o c tries=0
  shift
  while ((tries++ < MAX_TRIES)); do
    r=$("$@") || exit 1
    if [[ $r == disturbed* ]]; then
      read -r _ o c <<<"$r"
      echo "bench: run disturbed: ${o} of a core went elsewhere (${c:-?}); repeating in ${RETRY_WAIT}s" >&2
      sleep "$RETRY_WAIT"
      continue
    fi
    echo "$r" >>"$file"
    return 0
  done
  echo "bench: too many disturbed runs in a row; the machine is busy" >&2
  return 1
}

# file_median file n, file_max file n: the median and the largest of field
# n over the lines of file.
file_median() { awk -v n="$2" '{ print $n }' "$1" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
file_max() { awk -v n="$2" '{ print $n }' "$1" | sort -g | tail -1; }
