#!/usr/bin/env bash
# Step: Debian packages the dataplane, the test environment and the demo need.
source "$(dirname "$0")/lib.sh"

# command → package that provides it. Only missing commands trigger an apt-get install.
declare -A NEEDED=(
  [dockerd]=docker.io [nft]=nftables [ip]=iproute2 [conntrack]=conntrack [arping]=arping
  [iperf3]=iperf3 [debootstrap]=debootstrap [socat]=socat [curl]=curl [openssl]=openssl
  [kcat]=kcat [tcpdump]=tcpdump [docker-compose]=docker-compose [mvn]=maven [go]=golang-go [git]=git [ethtool]=ethtool
  [gcc]=gcc [busybox]=busybox-static
  [prometheus]=prometheus [promtool]=prometheus
)

step_begin packages "Debian packages (docker.io, nftables, iproute2, conntrack, arping, iperf3, ...)"
missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  step_end "all present"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]} and not root: install them or rerun as root"
say "missing: ${missing[*]} — installing with apt-get"
export DEBIAN_FRONTEND=noninteractive
run_logged apt-update apt-get update
run_logged apt-install apt-get install -y --no-install-recommends "${missing[@]}"
step_end "installed ${missing[*]}"
