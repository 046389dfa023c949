#!/usr/bin/env bash
# Installs what the test suite needs and is missing: dig (bind9-dnsutils),
# named-checkzone (bind9-utils, an independent check of what we serve),
# dnsperf, systemd-analyze (systemd: verifies the unit in deploy/systemd),
# promtool (prometheus: checks and unit-tests the alert rules in
# deploy/prometheus), chromium (the headless browser that tests the
# status page), and ip, nft, nsenter and prlimit (iproute2, nftables,
# util-linux: the network namespaces of the network-fault scenario and of
# the cross-site probe test, and a node run with a small open-files limit).
# Debian and Ubuntu through apt-get; elsewhere it says what to install and
# fails.
set -euo pipefail

need=()
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v dnsperf >/dev/null 2>&1 || need+=(dnsperf)
command -v named-checkzone >/dev/null 2>&1 || need+=(bind9-utils)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
command -v prlimit >/dev/null 2>&1 || need+=(util-linux)
((${#need[@]})) || exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing ${need[*]}; this is not a Debian or Ubuntu system: install dig, dnsperf, named-checkzone, systemd-analyze, promtool, chromium, ip, nft and nsenter with your package manager" >&2
  exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
    echo "install-deps: missing ${need[*]}; run as root or install sudo: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >/dev/null || true
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
