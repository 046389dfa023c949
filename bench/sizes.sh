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
# One server per size runs for the whole benchmark, all pinned to
# SERVER_CPU (one P each), dnsperf on PERF_CPU. They are started one
# after the other (the time each took to answer is printed), and then
# measured in ROUNDS rounds: each round runs every size once, in turn
# (10, 1000, 100000, 10, 1000, ...), so that a slow drift of the machine
# (another tenant, the host's caches) falls on every size alike instead
# of on the size measured while it lasted. While a size is measured the
# other servers are stopped (SIGSTOP), so that their probing takes
# nothing from the measured server's core; each is continued and
# checked with dig (its health checks back in step) before its own run.
# A run disturbed by load from outside is discarded and made again
# after RETRY_WAIT seconds (at most MAX_TRIES tries per run), and every run is preceded by a dig check
# of the static names, the NXDOMAIN and a sample of services
# (bench/lib.sh has the details).
#
# Printed per size: the median over the rounds of queries/s and of CPU
# per query, how busy the server's core was, the server's CPU while idle
# (probing, timers), its resident memory and how long it took to answer
# after start; every round's figures; then, for queries/s and CPU per
# query, the ratio max / min of the medians (the target: at most 1.10),
# and the median over the rounds of each round's own ratio max / min,
# which a drift from round to round does not inflate.
#
# Usage: bench/sizes.sh        (SIZES="10 1000 100000" SECS=10 ROUNDS=5)
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

ROUNDS=${ROUNDS:-5}
declare -A PORT PID QPS CPU NET BUSY IDLE RSS START OTHERS RUNS
read -ra sizes <<<"$SIZES"

# pause_others n: every server but n's stopped, n's running.
pause_others() {
  local m
  for m in "${sizes[@]}"; do
    [[ $m == "$1" ]] || kill -STOP "${PID[$m]}"
  done
  kill -CONT "${PID[$1]}"
}
# resume_all: every server running (before they are stopped for good:
# a stopped process does not act on TERM).
resume_all() {
  local m
  for m in "${sizes[@]}"; do
    [[ -n ${PID[$m]:-} ]] && kill -CONT "${PID[$m]}" 2>/dev/null || true
  done
}
trap 'resume_all; bench_cleanup' EXIT

for n in "${sizes[@]}"; do
  echo "sizes: $n services: generating and starting" >&2
  mkdir -p "$tmp/$n"
  generate "$n"
  mv "$tmp/services.yaml" "$tmp/queries" "$tmp/expect" "$tmp/$n/"
  for attempt in 1 2 3; do
    port=$(freeport)
    t0=$(date +%s%N)
    start_gslbd "$port" "$tmp/static.zone" "$tmp/$n/services.yaml" "gslbd$n"
    if wait_answer "$port" "gslbd$n" s0.bench.test 300; then
      START[$n]=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
      break
    fi
    stop_tree "$SERVER_PID"
    ((attempt < 3)) || exit 1
    echo "sizes: starting again on another port" >&2
  done
  PORT[$n]=$port PID[$n]=$SERVER_PID
  # Every endpoint up (rise), and the republish that follows, done.
  verify "$port" "gslbd$n" "$tmp/$n/expect" 60
done

# Idle CPU, each server alone on the core.
for n in "${sizes[@]}"; do
  pause_others "$n"
  sleep 2
  s0=$(tree_ticks "${PID[$n]}")
  sleep "$IDLE_SECS"
  IDLE[$n]=$(awk -v t=$(($(tree_ticks "${PID[$n]}") - s0)) -v tck="$TCK" -v s="$IDLE_SECS" 'BEGIN { printf "%.3f", t / tck / s }')
done

for r in $(seq "$ROUNDS"); do
  for n in "${sizes[@]}"; do
    pause_others "$n"
    # Health checks that timed out while the server was stopped come
    # back up (fall and rise need 2 in a row), and the catch-up settles.
    verify "${PORT[$n]}" "gslbd$n" "$tmp/$n/expect" 30
    sleep 2
    echo "sizes: round $r of $ROUNDS: $n services, ${SECS}s at full speed" >&2
    res=""
    keep_one "$tmp/$n/run.$r" run_full "${PORT[$n]}" "${PID[$n]}" "gslbd$n" "$tmp/$n/queries" "$tmp/$n/expect" &&
      res=$(cat "$tmp/$n/run.$r")
    RUNS[$n,$r]=$res
  done
done
resume_all
for n in "${sizes[@]}"; do
  RSS[$n]=$(awk '/^VmRSS:/ { printf "%.0f MiB", $2 / 1024 }' "/proc/${PID[$n]}/status")
done

# field n f: field f of the kept runs of size n, one a line.
field() {
  local r
  for r in $(seq "$ROUNDS"); do
    [[ -n ${RUNS[$1,$r]:-} ]] && awk -v f="$2" '{ print $f }' <<<"${RUNS[$1,$r]}"
  done
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for n in "${sizes[@]}"; do
  QPS[$n]=$(field "$n" 1 | median | awk '{ printf "%.0f", $1 }')
  CPU[$n]=$(field "$n" 2 | median | awk '{ printf "%.3f", $1 }')
  BUSY[$n]=$(field "$n" 3 | median | awk '{ printf "%.3f", $1 }')
  OTHERS[$n]=$(field "$n" 4 | sort -g | tail -1)
  [[ -n ${QPS[$n]} ]] || continue
  # What the queries cost beyond what the server spends idle.
  NET[$n]=$(awk -v c="${CPU[$n]}" -v i="${IDLE[$n]}" -v q="${QPS[$n]}" 'BEGIN { printf "%.3f", c - i * 1e6 / q }')
done

pct() { awk -v b="${1:-}" 'BEGIN { if (b == "") print "-"; else printf "%.0f%%", b * 100 }'; }
echo
echo "every round, queries/s and CPU per query (µs):"
printf '%6s' round
for n in "${sizes[@]}"; do printf ' %20s' "$n services"; done
echo
for r in $(seq "$ROUNDS"); do
  printf '%6s' "$r"
  for n in "${sizes[@]}"; do
    printf ' %20s' "$(awk '{ printf "%s %s", $1, $2 }' <<<"${RUNS[$n,$r]:-- -}")"
  done
  echo
done
echo
printf '%9s %10s %13s %9s %10s %9s %9s %8s %8s\n' services "queries/s" "CPU/query µs" "net µs" "core busy" "idle CPU" "RSS" "start s" "outside"
for n in "${sizes[@]}"; do
  printf '%9s %10s %13s %9s %10s %9s %9s %8s %8s\n' "$n" "${QPS[$n]:--}" "${CPU[$n]:--}" "${NET[$n]:--}" \
    "$(pct "${BUSY[$n]:-}")" "$(pct "${IDLE[$n]}")" "${RSS[$n]}" "${START[$n]}" "${OTHERS[$n]:--}"
done
echo "(medians of $ROUNDS rounds of ${SECS}s runs, sizes interleaved; net: CPU per query less the"
echo " server's idle CPU (probes, timers) spread over the queries; core busy: CPU per query times"
echo " queries/s; idle CPU: the server's over ${IDLE_SECS}s without queries; outside: the most CPU,"
echo " in cores, that anything outside the benchmark took during a kept run, at most NOISE=$NOISE)"
# ratio v...: max / min of the values given ("-" skipped).
ratio() { printf '%s\n' "$@" | awk '$1 != "-" && $1 != "" { if (min == "" || $1 < min) min = $1; if ($1 > max) max = $1 } END { if (min > 0) printf "%.3f", max / min; else print "-" }'; }
# round_ratio f: the median over the rounds with every size kept of
# the round's max / min of field f.
round_ratio() {
  local r n v
  for r in $(seq "$ROUNDS"); do
    v=()
    for n in "${sizes[@]}"; do
      [[ -n ${RUNS[$n,$r]:-} ]] || continue 2
      v+=("$(awk -v f="$1" '{ print $f }' <<<"${RUNS[$n,$r]}")")
    done
    ratio "${v[@]}"
    echo
  done | median | awk '{ printf "%.3f", $1 }'
}
qs=() cs=() ns=()
for n in "${sizes[@]}"; do qs+=("${QPS[$n]:--}") cs+=("${CPU[$n]:--}") ns+=("${NET[$n]:--}"); done
echo
echo "max / min over the sizes (target: at most 1.10):"
echo "  of the medians:        queries/s $(ratio "${qs[@]}"), CPU per query $(ratio "${cs[@]}"), net $(ratio "${ns[@]}")"
echo "  median of each round's: queries/s $(round_ratio 1), CPU per query $(round_ratio 2)"
awk -v b="$(printf '%s\n' "${BUSY[@]}" | sort -g | tail -1)" 'BEGIN { if (b != "" && b < 0.9)
  printf "the server'"'"'s core was at most %.0f%% busy: dnsperf'"'"'s core, not the server, set the pace, so\nqueries/s would stay flat even if the cost per query grew: compare the CPU per query\n", b * 100 }'
