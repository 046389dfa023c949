#!/usr/bin/env bash
# Load-tests a gslbd node on loopback with dnsperf: builds the binary, serves
# testdata/dig/gslbd.yaml (the demo zone and all-down services) on a free
# port, and sends a mix of static, negative and service queries.
# Usage: scripts/dnsperf.sh [seconds] [clients]   (defaults 10 and 4)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
clients=${2:-4}
command -v dnsperf >/dev/null || ./scripts/install-deps.sh
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/gslbd" ./cmd/gslbd
# shellcheck source=bench/lib.sh
source bench/lib.sh
port=$(freeport)
sed "s/127.0.0.1:0/127.0.0.1:$port/" testdata/dig/gslbd.yaml >"$tmp/gslbd.yaml"
sed -i "s#file: ../demo/#file: $PWD/testdata/demo/#; s#services: services.yaml#services: $PWD/testdata/dig/services.yaml#" "$tmp/gslbd.yaml"
"$tmp/gslbd" serve -config "$tmp/gslbd.yaml" -log-level warn &
pid=$!
for _ in $(seq 100); do kill -0 $pid || { echo "gslbd did not start" >&2; exit 1; }; dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" www.example.com >/dev/null 2>&1 && break; sleep 0.1; done
cat >"$tmp/queries" <<'Q'
www.example.com A
www.example.com AAAA
nope.example.com A
alias.example.com A
anything.wild.example.com A
host.sub.example.com A
down.example.com A
first.example.com A
Q
dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries" -l "$secs" -c "$clients" -q 200 | sed -n '/Statistics/,$p'
