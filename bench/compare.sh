#!/usr/bin/env bash
# Side by side: gslbd against gdnsd (health-checked failover, DYNA metafo
# with http_status checks), NSD and Knot (static), on 127.0.0.1, each
# single-threaded and pinned to one core, dnsperf pinned to another.
#
# Every server serves the zone bench.test with the same static names and a
# service www: gslbd as a failover service over two sites whose endpoints
# are healthy HTTP servers of our own on loopback, gdnsd as DYNA metafo
# with http_status checks on the same endpoints, NSD and Knot as a plain A
# record. One query file for all: 60% the service name, 30% static names,
# 10% names that do not exist.
#
# For each server: REPS runs of SECS seconds at full speed (the median
# queries/s is reported; a run is discarded and retried when the machine
# spent noticeably more CPU than the server and dnsperf did, i.e. when
# something else was running), server CPU per query from /proc/PID/stat,
# then one run at half the median rate with dnsperf -v, whose per-query
# latencies give the mean and the p99. Last, gslbd's ratios to each peer.
#
# Before every run each server must answer every name of the query file
# right (dig), and every run's replies must be NOERROR or NXDOMAIN with
# at most 1% lost (plus those in flight at the end); otherwise the script
# stops with the server's log.
#
# Usage: bench/compare.sh            (SECS=10 REPS=3 by default)
# Needs Linux, 2 or more cores, python3, and apt-get (as root or with sudo)
# for packages that are missing. Runs on demand; not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
REPS=${REPS:-3}
MAX_TRIES=${MAX_TRIES:-6}
# Share of the machine's CPU time during a run that may go to processes
# other than the server and dnsperf before the run counts as disturbed.
NOISE=${NOISE:-0.15}

((${ncpu:=$(nproc)} >= 2)) || { echo "compare: needs at least 2 cores" >&2; exit 1; }
SERVER_CPU=${SERVER_CPU:-0}
PERF_CPU=${PERF_CPU:-1}

need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v gdnsd >/dev/null || [[ -x /usr/sbin/gdnsd ]] || need+=(gdnsd)
command -v nsd >/dev/null || [[ -x /usr/sbin/nsd ]] || need+=(nsd)
command -v knotd >/dev/null || [[ -x /usr/sbin/knotd ]] || need+=(knot)
if ((${#need[@]})); then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  echo "compare: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # The packages' init scripts would start system-wide daemons on port 53;
  # we start our own.
  "${sudo[@]}" apt-get update -q >/dev/null || true
  RUNLEVEL=1 "${sudo[@]}" apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
PATH=$PATH:/usr/sbin

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

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

# --- the HTTP endpoints: one small process of ours, 200 on every path ---
hport=$(freeport)
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
python3 "$tmp/backend.py" "$hport" 127.0.10.1 127.0.10.2 127.0.20.1 2>/dev/null &
pids+=($!)

# --- the zone, the query file ---
serial=2024010101
cat >"$tmp/static.zone" <<EOF
\$ORIGIN bench.test.
\$TTL 3600
@     IN SOA ns1.bench.test. hostmaster.bench.test. $serial 7200 3600 1209600 300
@     IN NS  ns1.bench.test.
ns1   IN A   127.0.0.1
mail  IN A   192.0.2.25
api   IN A   192.0.2.26
cdn   IN A   192.0.2.27
EOF
cp "$tmp/static.zone" "$tmp/plain.zone"
echo "www 20 IN A 127.0.10.1" >>"$tmp/plain.zone"
echo "www 20 IN A 127.0.10.2" >>"$tmp/plain.zone"
{
  for _ in $(seq 6); do echo "www.bench.test A"; done
  echo "mail.bench.test A"; echo "api.bench.test A"; echo "cdn.bench.test A"
  echo "nothere.bench.test A"
} >"$tmp/queries"
# dnsperf loops over the file; 10 lines give the mix exactly.

# --- the servers: each function starts one on port $1 and prints its PID ---
start_gslbd() {
  go build -o "$tmp/gslbd" ./cmd/gslbd
  cat >"$tmp/services.yaml" <<EOF
sites: [dc1, dc2]
defaults:
  check: {type: http, port: $hport, path: /}
services:
  www.bench.test:
    policy: failover
    ttl: 20
    min_healthy: 1
    all_down: all
    sites:
      dc1: [127.0.10.1, 127.0.10.2]
      dc2: [127.0.20.1]
EOF
  cat >"$tmp/gslbd.yaml" <<EOF
node: {name: bench, site: dc1}
dns:
  listen: ["127.0.0.1:$1"]
admin: {disabled: true}
zones:
  - origin: bench.test.
    file: $tmp/static.zone
services: $tmp/services.yaml
log: {level: warn}
EOF
  GOMAXPROCS=1 taskset -c "$SERVER_CPU" "$tmp/gslbd" serve -config "$tmp/gslbd.yaml" >"$tmp/gslbd.log" 2>&1 &
  echo $!
}

start_gdnsd() {
  mkdir -p "$tmp/gdnsd/zones" "$tmp/gdnsd/run" "$tmp/gdnsd/state"
  cp "$tmp/static.zone" "$tmp/gdnsd/zones/bench.test"
  echo "www 20 DYNA metafo!www" >>"$tmp/gdnsd/zones/bench.test"
  cat >"$tmp/gdnsd/config" <<EOF
options => {
  listen => [ 127.0.0.1 ]
  dns_port => $1
  udp_threads => 1
  tcp_threads => 1
  run_dir => $tmp/gdnsd/run
  state_dir => $tmp/gdnsd/state
}
service_types => {
  web => { plugin => http_status, port => $hport, url_path => /, interval => 10 }
}
plugins => {
  metafo => {
    resources => {
      www => {
        service_types => [ web ]
        datacenters => [ dc1, dc2 ]
        dcmap => {
          dc1 => [ 127.0.10.1, 127.0.10.2 ]
          dc2 => [ 127.0.20.1 ]
        }
      }
    }
  }
}
EOF
  taskset -c "$SERVER_CPU" gdnsd -c "$tmp/gdnsd" start >"$tmp/gdnsd.log" 2>&1 &
  echo $!
}

start_nsd() {
  mkdir -p "$tmp/nsd"
  cp "$tmp/plain.zone" "$tmp/nsd/bench.test.zone"
  cat >"$tmp/nsd/nsd.conf" <<EOF
server:
  ip-address: 127.0.0.1@$1
  server-count: 1
  tcp-count: 10
  username: ""
  zonesdir: "$tmp/nsd"
  database: ""
  pidfile: "$tmp/nsd/nsd.pid"
  xfrdfile: "$tmp/nsd/xfrd.state"
  zonelistfile: "$tmp/nsd/zone.list"
  xfrdir: "$tmp/nsd"
  logfile: "$tmp/nsd.log"
  verbosity: 0
  hide-version: yes
  # Debian's NSD is built with response rate limiting, on by default at 200
  # answers a second per client prefix: every query here comes from
  # 127.0.0.1, so it would drop or truncate nearly all of them.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: bench.test
  zonefile: bench.test.zone
EOF
  taskset -c "$SERVER_CPU" nsd -d -c "$tmp/nsd/nsd.conf" >>"$tmp/nsd.log" 2>&1 &
  echo $!
}

start_knot() {
  mkdir -p "$tmp/knot"
  cp "$tmp/plain.zone" "$tmp/knot/bench.test.zone"
  cat >"$tmp/knot/knot.conf" <<EOF
server:
  listen: 127.0.0.1@$1
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
  rundir: "$tmp/knot"
log:
  - target: stderr
    any: warning
database:
  storage: "$tmp/knot"
template:
  - id: default
    storage: "$tmp/knot"
    journal-content: none
    zonefile-sync: -1
zone:
  - domain: bench.test
    file: bench.test.zone
EOF
  taskset -c "$SERVER_CPU" knotd -c "$tmp/knot/knot.conf" -s "$tmp/knot/knot.sock" >"$tmp/knot.log" 2>&1 &
  echo $!
}

# descendants pid -> the PID and those of all its descendants.
descendants() {
  local p
  echo "$1"
  for p in $(pgrep -P "$1" 2>/dev/null || true); do descendants "$p"; done
}

# CPU ticks (user + system) of a server and all its descendants: NSD
# answers from a grandchild (xfrd, then main, then the server process).
cpu_ticks() {
  local p t=0 x
  for p in $(descendants "$1"); do
    # utime and stime, counted after the command name, which may hold
    # spaces ("nsd: server 1").
    x=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
    x=${x:-0}
    t=$((t + x))
  done
  echo "$t"
}
total_ticks() { awk '/^cpu /{s=0; for (i=2; i<=NF; i++) s+=$i; print s - $5 - $6}' /proc/stat; } # busy, all CPUs

wait_ready() { # port name
  for _ in $(seq 300); do
    [[ $(dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 www.bench.test A 2>/dev/null | head -1) =~ ^127\. ]] && return 0
    sleep 0.1
  done
  echo "compare: $2 did not answer www.bench.test; its log:" >&2
  cat "$tmp/$2.log" >&2 || true
  return 1
}

# verify port name: every name of the query file must get its right
# answer, authoritative, before a run counts; a server that refuses, fails
# or answers something else (a zone not loaded, a wrong config) stops the
# comparison here, loudly, rather than yielding a fast-looking line.
verify() {
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
    echo "compare: $name answers $q with ${status:-no reply} [${ans}], want $want (authoritative); its log:" >&2
    cat "$tmp/$name.log" >&2 2>/dev/null || true
    exit 1
  done <<EOF
www.bench.test 127.0.10.1 127.0.10.2
mail.bench.test 192.0.2.25
api.bench.test 192.0.2.26
cdn.bench.test 192.0.2.27
nothere.bench.test NXDOMAIN
EOF
}

# check_perf name output: dnsperf's replies must all be NOERROR or
# NXDOMAIN, and (nearly) none lost: at most the 500 in flight when the
# time is up, plus 1%.
check_perf() {
  local name=$1 out=$2 codes lost sent
  codes=$(awk -F: '/Response codes:/{print $2}' <<<"$out")
  sent=$(awk '/Queries sent:/{print $3}' <<<"$out")
  lost=$(awk '/Queries lost:/{print $3}' <<<"$out")
  if grep -Eq 'SERVFAIL|REFUSED|FORMERR|NOTIMP' <<<"$codes" || [[ -z $sent || -z $lost ]] || ((lost > 500 + sent / 100)); then
    echo "compare: $name: dnsperf got${codes}, ${lost:-?} of ${sent:-?} lost; not a fair run. dnsperf said:" >&2
    echo "$out" >&2
    exit 1
  fi
}

# run_full port pid name -> prints "qps cpu_per_query_us" or "disturbed"
run_full() {
  local port=$1 pid=$2 name=$3 s0 s1 t0 t1 out qps n busy_other tck
  tck=$(getconf CLK_TCK)
  verify "$port" "$name"
  s0=$(cpu_ticks "$pid"); t0=$(total_ticks)
  out=$(taskset -c "$PERF_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries" -l "$SECS" -c 4 -q 500 2>&1)
  s1=$(cpu_ticks "$pid"); t1=$(total_ticks)
  check_perf "$name" "$out"
  qps=$(awk '/Queries per second:/{print $4}' <<<"$out")
  n=$(awk '/Queries completed:/{print $3}' <<<"$out")
  # dnsperf keeps its core busy for the whole run: SECS*tck ticks. Whatever
  # else the machine did beyond server + dnsperf is someone else's load.
  busy_other=$(awk -v t=$((t1 - t0)) -v s=$((s1 - s0)) -v d=$((SECS * tck)) -v n="$NOISE" -v c="$ncpu" \
    'BEGIN { o = t - s - d; print (o > n * c * d) ? 1 : 0 }')
  if [[ $busy_other == 1 ]]; then echo disturbed; return; fi
  awk -v q="$qps" -v n="$n" -v s=$((s1 - s0)) -v tck="$tck" 'BEGIN { printf "%s %.2f\n", q, s / tck / n * 1e6 }'
}

# run_half port qps -> prints "mean_ms p99_ms"
run_half() {
  local port=$1 rate=$2
  taskset -c "$PERF_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries" -l "$SECS" -c 4 -q 500 -Q "$rate" -v 2>/dev/null |
    awk '$1 == ">" && NF >= 5 { print $NF }' | sort -g |
    awk '{ a[NR] = $1; s += $1 } END { if (NR == 0) { print "- -"; exit } i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f %.3f\n", s / NR * 1000, a[i] * 1000 }'
}

declare -A QPS CPU MEAN P99
servers=(gslbd gdnsd nsd knot)
for name in "${servers[@]}"; do
  # The port is free when picked, but the machine's other processes may
  # take it before the server binds it: try another then.
  for attempt in 1 2 3; do
    port=$(freeport)
    pid=$("start_$name" "$port")
    pids+=("$pid")
    wait_ready "$port" "$name" && break
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    ((attempt < 3)) || exit 1
    echo "compare: $name: starting again on another port" >&2
  done
  sleep 1 # let health checks settle and caches warm
  qs=() cs=()
  tries=0
  while ((${#qs[@]} < REPS)); do
    ((tries++ < MAX_TRIES)) || { echo "compare: $name: too many disturbed runs; the machine is busy" >&2; break; }
    r=$(run_full "$port" "$pid" "$name") || exit 1
    if [[ $r == disturbed ]]; then echo "compare: $name: run disturbed by other load, repeating" >&2; continue; fi
    qs+=("${r% *}"); cs+=("${r#* }")
  done
  ((${#qs[@]})) || { QPS[$name]=0; CPU[$name]=0; MEAN[$name]=-; P99[$name]=-; kill "$pid"; continue; }
  med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  QPS[$name]=$(med "${qs[@]}")
  CPU[$name]=$(med "${cs[@]}")
  half=$(awk -v q="${QPS[$name]}" 'BEGIN { printf "%d", q / 2 }')
  verify "$port" "$name"
  read -r MEAN[$name] P99[$name] < <(run_half "$port" "$half")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done

printf '\n%-6s %12s %14s %14s %12s\n' server "queries/s" "CPU/query µs" "mean ms @½" "p99 ms @½"
for name in "${servers[@]}"; do
  printf '%-6s %12.0f %14s %14s %12s\n' "$name" "${QPS[$name]}" "${CPU[$name]}" "${MEAN[$name]}" "${P99[$name]}"
done
echo
for peer in gdnsd nsd knot; do
  awk -v p="$peer" -v gq="${QPS[gslbd]}" -v pq="${QPS[$peer]}" -v gc="${CPU[gslbd]}" -v pc="${CPU[$peer]}" \
    'BEGIN { if (pq > 0 && pc > 0) printf "gslbd / %-5s queries/s %.2f   CPU per query %.2f\n", p, gq / pq, gc / pc }'
done
