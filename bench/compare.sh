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
# Every server runs from the start, on its own port, and the runs go in
# rounds, one run of each server per round, so that the machine's slow
# drifts fall on every server alike. For each server (bench/lib.sh has
# the details):
#   - REPS runs of SECS seconds at full speed: the median queries/s, the
#     median server CPU per query (the server's CPU time from /proc over
#     the queries answered) and how busy the server's core was;
#   - REPS runs at half that median rate with a latency probe beside the
#     load (a second dnsperf at 1,000 queries/s, one at a time, at a
#     real-time priority; see run_rate): the median of the runs' mean
#     (the load's) and p99 (the probe's) latency.
#     During these runs an idle-priority busy loop keeps each core from
#     halting (AWAKE=0: not): a halted virtual CPU takes the host's time
#     to wake, which would be measured instead of the server; the
#     machine's own wake-up latency, with and without, is printed too;
#   - a run in which anything outside the benchmark took more than NOISE
#     of a core is discarded (and named on stderr) and made again;
#   - before every run the server must give the right authoritative answer
#     to every name of the query file (dig), and every run's replies must
#     be NOERROR or NXDOMAIN with at most 1% lost, or the script stops
#     with the server's log.
# Last, gslbd's ratios to each peer.
#
# On two cores dnsperf's core saturates before a server's does: the
# "core busy" column says how far the server was from its own limit, and
# the CPU per query is the figure that compares servers (1e6 / CPU per
# query is what one core of it would answer).
#
# Usage: bench/compare.sh            (SECS=10 REPS=3 by default;
#        SERVERS="gslbd gdnsd" for some of them)
# Needs Linux, 2 or more cores, python3, and apt-get (as root or with sudo)
# for packages that are missing. Runs on demand; not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

bench_setup dnsperf=dnsperf gdnsd=gdnsd nsd=nsd knotd=knot dig=bind9-dnsutils
build_gslbd

hport=$(freeport)
start_backend "$hport" 127.0.10.1 127.0.10.2 127.0.20.1

# --- the zone, the query file, the right answers ---
write_static_zone "$tmp/static.zone"
cp "$tmp/static.zone" "$tmp/plain.zone"
echo "www 20 IN A 127.0.10.1" >>"$tmp/plain.zone"
echo "www 20 IN A 127.0.10.2" >>"$tmp/plain.zone"
{
  for _ in $(seq 6); do echo "www.bench.test A"; done
  echo "mail.bench.test A"; echo "api.bench.test A"; echo "cdn.bench.test A"
  echo "nothere.bench.test A"
} >"$tmp/queries"
# dnsperf loops over the file; 10 lines give the mix exactly.
cat >"$tmp/expect" <<EOF
www.bench.test 127.0.10.1 127.0.10.2
mail.bench.test 192.0.2.25
api.bench.test 192.0.2.26
cdn.bench.test 192.0.2.27
nothere.bench.test NXDOMAIN
EOF

# --- the servers: each function starts one on port $1, sets SERVER_PID ---
start_gslbd_www() {
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
  start_gslbd "$1" "$tmp/static.zone" "$tmp/services.yaml"
}

start_gdnsd() {
  rm -rf "$tmp/gdnsd"
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
  SERVER_PID=$!
  track "$SERVER_PID"
}

start_nsd() {
  rm -rf "$tmp/nsd"
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
  SERVER_PID=$!
  track "$SERVER_PID"
}

start_knot() {
  rm -rf "$tmp/knot"
  mkdir -p "$tmp/knot"
  cp "$tmp/plain.zone" "$tmp/knot/bench.test.zone"
  cat >"$tmp/knot/knot.conf" <<EOF
server:
  listen: 127.0.0.1@$1
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
  rundir: "$tmp/knot"
  pidfile: "$tmp/knot/knot.pid"
control:
  listen: "$tmp/knot/knot.sock"
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
  taskset -c "$SERVER_CPU" knotd -c "$tmp/knot/knot.conf" >"$tmp/knot.log" 2>&1 &
  SERVER_PID=$!
  track "$SERVER_PID"
}

wake=$(wakeup_latency)
awake_start
wake_awake=$(wakeup_latency)
awake_stop

declare -A QPS CPU BUSY MEAN P99 OTHERS PORT PID
read -ra servers <<<"${SERVERS:-gslbd gdnsd nsd knot}"
# Every server runs from the start, each on its own port, all pinned to
# the server core; only the one under test gets queries (the others idle:
# their CPU counts as outside load, a few ticks).
for name in "${servers[@]}"; do
  start=start_$name
  [[ $name == gslbd ]] && start=start_gslbd_www
  # The port is free when picked, but the machine's other processes may
  # take it before the server binds it: try another then.
  for attempt in 1 2 3; do
    port=$(freeport)
    "$start" "$port"
    wait_answer "$port" "$name" www.bench.test && break
    stop_tree "$SERVER_PID"
    ((attempt < 3)) || exit 1
    echo "compare: $name: starting again on another port" >&2
  done
  PORT[$name]=$port PID[$name]=$SERVER_PID
done
# Health checks come up (gdnsd's first http_status round, gslbd's rise).
for name in "${servers[@]}"; do
  verify "${PORT[$name]}" "$name" "$tmp/expect" 15
done

# Rounds: one run of each server per round, REPS rounds, so that a slow
# drift of the machine (someone else's load coming and going) falls on
# every server alike.
ok=("${servers[@]}")
# prune: ok without the servers in drop.
prune() {
  local name d keep=()
  for name in "${ok[@]}"; do
    for d in "${drop[@]}"; do [[ $d == "$name" ]] && continue 2; done
    keep+=("$name")
  done
  ok=("${keep[@]}")
}
rounds() {
  local kind=$1 r name rate drop=()
  for r in $(seq "$REPS"); do
    prune
    echo "compare: round $r of $REPS, $kind: ${ok[*]}" >&2
    for name in "${ok[@]}"; do
      if [[ $kind == full ]]; then
        keep_one "$tmp/full.$name" run_full "${PORT[$name]}" "${PID[$name]}" "$name" "$tmp/queries" "$tmp/expect" && continue
      else
        rate=$(awk -v q="${QPS[$name]}" 'BEGIN { printf "%d", q / 2 }')
        keep_one "$tmp/rate.$name" run_rate "${PORT[$name]}" "${PID[$name]}" "$name" "$tmp/queries" "$tmp/expect" "$rate" && continue
      fi
      echo "compare: $name: left out" >&2
      drop+=("$name")
    done
  done
  prune
}
rounds full
for name in "${ok[@]}"; do
  QPS[$name]=$(file_median "$tmp/full.$name" 1)
  CPU[$name]=$(file_median "$tmp/full.$name" 2)
  BUSY[$name]=$(file_median "$tmp/full.$name" 3)
  OTHERS[$name]=$(file_max "$tmp/full.$name" 4)
done
rounds rate
for name in "${ok[@]}"; do
  MEAN[$name]=$(file_median "$tmp/rate.$name" 1)
  P99[$name]=$(file_median "$tmp/rate.$name" 2)
done
for name in "${servers[@]}"; do stop_tree "${PID[$name]}"; done

echo
printf '%-6s %10s %13s %10s %12s %11s %8s\n' server "queries/s" "CPU/query µs" "core busy" "mean ms @½" "p99 ms @½" "outside"
for name in "${servers[@]}"; do
  printf '%-6s %10s %13s %10s %12s %11s %8s\n' "$name" "${QPS[$name]:--}" "${CPU[$name]:--}" \
    "$(awk -v b="${BUSY[$name]:-}" 'BEGIN { if (b == "") print "-"; else printf "%.0f%%", b * 100 }')" \
    "${MEAN[$name]:--}" "${P99[$name]:--}" "${OTHERS[$name]:--}"
done
echo "(medians of $REPS runs of ${SECS}s; core busy: CPU per query times queries/s;"
echo " @½: at half the median queries/s; outside: the most CPU, in cores, that anything outside"
echo " the benchmark took during a kept run, at most NOISE=$NOISE)"
echo "(the machine's own wake-up latency, p99 of how much a 1 ms sleep overruns: $wake;"
echo " with the cores kept from halting, as during the latency runs (AWAKE=$AWAKE): $wake_awake)"
awk -v b="$(printf '%s\n' "${BUSY[@]}" | sort -g | tail -1)" 'BEGIN { if (b != "" && b < 0.9)
  printf "(no server'"'"'s core was more than %.0f%% busy: dnsperf'"'"'s core set the pace of the full-speed runs;\n CPU per query is what compares the servers)\n", b * 100 }'
echo
for peer in gdnsd nsd knot; do
  awk -v p="$peer" -v gq="${QPS[gslbd]:-0}" -v pq="${QPS[$peer]:-0}" -v gc="${CPU[gslbd]:-0}" -v pc="${CPU[$peer]:-0}" \
    'BEGIN { if (pq > 0 && pc > 0 && gq > 0) printf "gslbd / %-5s queries/s %.2f   CPU per query %.2f\n", p, gq / pq, gc / pc }'
done
