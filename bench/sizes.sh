#!/usr/bin/env bash
# Cost independent of size: gslbd's queries/s and CPU per query with 10,
# 1,000 and 100,000 failover services, which must stay within 10% of
# each other.
#
# For each size a services file is generated: services s0 .. s(N-1) in
# the zone bench.test, each a failover service with two endpoints in
# dc1 and one in dc2. The endpoints are healthy HTTP servers of our own
# on loopback, 8 addresses per site, each service taking its own
# combination of them: every service is its own set of targets (health
# is tracked, and the answer prepacked, per service), while an address
# shared by several services is probed once per interval, so probing
# costs the same at every size and the runs measure the query path.
#
# The query file (QLINES lines, the same length at every size) has the
# mix of compare.sh: 60% service names, drawn uniformly from all
# services, 30% static names, 10% names that do not exist.
#
# gslbd runs with one P pinned to SERVER_CPU, dnsperf on PERF_CPU, REPS
# runs of SECS seconds at full speed per size, disturbed runs discarded
# and made again, every run preceded by a dig check of the static names,
# the NXDOMAIN and a sample of services (bench/lib.sh has the details).
# Printed per size: median queries/s, median CPU per query, how busy the
# server's core was, the server's CPU while idle (probing, timers), its
# resident memory and how long it took to answer after start; then the
# spread of queries/s and of CPU per query, (max - min) / min.
#
# Usage: bench/sizes.sh        (SIZES="10 1000 100000" SECS=10 REPS=3)
# Needs Linux, 2 or more cores, python3, and apt-get (as root or with sudo)
# for packages that are missing. Runs on demand; not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

SIZES=${SIZES:-10 1000 100000}
QLINES=${QLINES:-1000000}
IDLE_SECS=${IDLE_SECS:-5}

bench_setup dnsperf=dnsperf dig=bind9-dnsutils
build_gslbd

hport=$(freeport)
dc1=() dc2=()
for k in $(seq 8); do dc1+=("127.0.11.$k") dc2+=("127.0.21.$k"); done
start_backend "$hport" "${dc1[@]}" "${dc2[@]}"

write_static_zone "$tmp/static.zone"

# generate n: $tmp/services.yaml, $tmp/queries and $tmp/expect for n
# services. Service i has dc1: 127.0.11.(a+1), 127.0.11.(b+1) with
# a = i mod 8 and b another of the 8 chosen by i / 8; dc2: 127.0.21.(i
# mod 8 + 1).
generate() {
  local n=$1
  awk -v n="$n" -v port="$hport" -v out="$tmp/services.yaml" -v ex="$tmp/expect" 'BEGIN {
    print "sites: [dc1, dc2]" > out
    print "defaults:" > out
    printf "  check: {type: http, port: %d, path: /}\n", port > out
    print "services:" > out
    # The dig sample: first, last, and a few between.
    want[0] = 1; want[n - 1] = 1; for (k = 1; k < 8; k++) want[int(n * k / 8)] = 1
    for (i = 0; i < n; i++) {
      a = i % 8; b = (a + 1 + int(i / 8) % 7) % 8
      printf "  s%d.bench.test: {policy: failover, sites: {dc1: [127.0.11.%d, 127.0.11.%d], dc2: [127.0.21.%d]}}\n", i, a + 1, b + 1, a + 1 > out
      if (i in want) {
        x = "127.0.11." (a + 1); y = "127.0.11." (b + 1)
        if (x > y) { t = x; x = y; y = t }
        printf "s%d.bench.test %s %s\n", i, x, y > ex
      }
    }
    print "mail.bench.test 192.0.2.25" > ex
    print "api.bench.test 192.0.2.26" > ex
    print "cdn.bench.test 192.0.2.27" > ex
    print "nothere.bench.test NXDOMAIN" > ex
  }'
  # Blocks of 10 lines: 6 services drawn uniformly, 3 static, 1 NXDOMAIN.
  awk -v n="$n" -v lines="$QLINES" 'BEGIN {
    srand(9)
    for (i = 0; i < lines; i++) {
      k = i % 10
      if (k < 6) printf "s%d.bench.test A\n", int(rand() * n)
      else if (k == 6) print "mail.bench.test A"
      else if (k == 7) print "api.bench.test A"
      else if (k == 8) print "cdn.bench.test A"
      else print "nothere.bench.test A"
    }
  }' >"$tmp/queries"
}

declare -A QPS CPU NET BUSY IDLE RSS START OTHERS
read -ra sizes <<<"$SIZES"
for n in "${sizes[@]}"; do
  echo "sizes: $n services: generating" >&2
  generate "$n"
  for attempt in 1 2 3; do
    port=$(freeport)
    t0=$(date +%s%N)
    start_gslbd "$port" "$tmp/static.zone" "$tmp/services.yaml"
    if wait_answer "$port" gslbd s0.bench.test 300; then
      START[$n]=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
      break
    fi
    stop_tree "$SERVER_PID"
    ((attempt < 3)) || exit 1
    echo "sizes: starting again on another port" >&2
  done
  # Every endpoint up (rise), and the republish that follows, done.
  verify "$port" gslbd "$tmp/expect" 60
  sleep 2
  s0=$(tree_ticks "$SERVER_PID")
  sleep "$IDLE_SECS"
  IDLE[$n]=$(awk -v t=$(($(tree_ticks "$SERVER_PID") - s0)) -v tck="$TCK" -v s="$IDLE_SECS" 'BEGIN { printf "%.3f", t / tck / s }')
  echo "sizes: $n services: $REPS runs of ${SECS}s at full speed" >&2
  if repeat run_full "$port" "$SERVER_PID" gslbd "$tmp/queries" "$tmp/expect"; then
    QPS[$n]=$(kept_median 1)
    CPU[$n]=$(kept_median 2)
    BUSY[$n]=$(kept_median 3)
    OTHERS[$n]=$(kept_max 4)
    # What the queries cost beyond what the server spends idle.
    NET[$n]=$(awk -v c="${CPU[$n]}" -v i="${IDLE[$n]}" -v q="${QPS[$n]}" 'BEGIN { printf "%.3f", c - i * 1e6 / q }')
  fi
  RSS[$n]=$(awk '/^VmRSS:/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$SERVER_PID/status")
  stop_tree "$SERVER_PID"
done

pct() { awk -v b="${1:-}" 'BEGIN { if (b == "") print "-"; else printf "%.0f%%", b * 100 }'; }
echo
printf '%9s %10s %13s %9s %10s %9s %9s %8s %8s\n' services "queries/s" "CPU/query µs" "net µs" "core busy" "idle CPU" "RSS" "start s" "outside"
for n in "${sizes[@]}"; do
  printf '%9s %10s %13s %9s %10s %9s %9s %8s %8s\n' "$n" "${QPS[$n]:--}" "${CPU[$n]:--}" "${NET[$n]:--}" \
    "$(pct "${BUSY[$n]:-}")" "$(pct "${IDLE[$n]}")" "${RSS[$n]}" "${START[$n]}" "${OTHERS[$n]:--}"
done
echo "(medians of $REPS runs of ${SECS}s; net: CPU per query less the server's idle CPU (probes,"
echo " timers) spread over the queries; core busy: CPU per query times queries/s;"
echo " idle CPU: the server's over ${IDLE_SECS}s without queries; outside: the most CPU, in cores,"
echo " that anything outside the benchmark took during a kept run, at most NOISE=$NOISE)"
spread() { printf '%s\n' "$@" | awk '$1 != "-" { if (min == "" || $1 < min) min = $1; if ($1 > max) max = $1 } END { if (min > 0) printf "%.1f%%", (max - min) / min * 100; else print "-" }'; }
qs=() cs=() ns=()
for n in "${sizes[@]}"; do qs+=("${QPS[$n]:--}") cs+=("${CPU[$n]:--}") ns+=("${NET[$n]:--}"); done
echo
echo "spread, (max - min) / min: queries/s $(spread "${qs[@]}"), CPU per query $(spread "${cs[@]}"), net $(spread "${ns[@]}") (target: within 10%)"
awk -v b="$(printf '%s\n' "${BUSY[@]}" | sort -g | tail -1)" 'BEGIN { if (b != "" && b < 0.9)
  printf "the server'"'"'s core was at most %.0f%% busy: dnsperf'"'"'s core, not the server, set the pace, so\nqueries/s would stay flat even if the cost per query grew: compare the CPU per query\n", b * 100 }'
