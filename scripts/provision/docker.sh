#!/usr/bin/env bash
# Step: a running Docker engine for testcontainers. Uses the running one if there is one.
source "$(dirname "$0")/lib.sh"

step_begin docker "Docker engine"
if docker info >/dev/null 2>&1; then
  step_end "already running"
  exit 0
fi
command -v dockerd >/dev/null || die "dockerd not found; the packages step installs docker.io"
# No systemd here: start dockerd ourselves. --iptables=false keeps Docker out of the machine's
# own netfilter tables; the project's containers use host networking on loopback only.
say "starting dockerd (log: $CACHE_DIR/logs/dockerd.log)"
nohup dockerd --iptables=false --ip6tables=false >"$CACHE_DIR/logs/dockerd.log" 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { step_end "started pid $!"; exit 0; }
  sleep 0.5
done
tail -n 20 "$CACHE_DIR/logs/dockerd.log" >&2
die "dockerd did not become ready within 30s"
