#!/bin/bash
# PID 1 of a real-node test cluster node: a privileged Docker container (no systemd) that runs
# containerd, kubelet, kube-proxy and flanneld the way a systemd-managed node would, each
# restarted by a supervisor loop when it exits. src/devenv/real-nodes.ts starts the container
# with --network none and --cgroupns private, then gives it its uplink (eth0, a veth whose
# router end is on the netcluster's fabric bridge). Everything node-specific comes from the
# harness through /etc/kseip-node (read-only bind mount):
#   node.env                      NODE_NAME, NODE_IP (and nothing secret)
#   kubelet.yaml, *.kubeconfig    kubelet config and client credentials (Node authorizer)
#   kube-proxy-<mode>.yaml        one KubeProxyConfiguration per mode
#   kube-proxy-mode               nftables or iptables, read at every (re)start of kube-proxy
#   net-conf.json                 flannel's network config
#   kubelet-extra-args            optional extra kubelet flags, one per line (fault tests)
# Logs go to /var/log/kseip-node/<service>.log (a bind mount the harness reads even after the
# container is gone); PIDs to /run/kseip-node/<service>.pid, so a test restarts one service
# with `kill $(cat /run/kseip-node/kube-proxy.pid)`.
set -euo pipefail

CONF=/etc/kseip-node
LOGS=/var/log/kseip-node
PIDS=/run/kseip-node
mkdir -p "$LOGS" "$PIDS" /etc/cni/net.d /run/flannel
exec > >(tee -a "$LOGS/entrypoint.log") 2>&1
log() { echo "[kseip-node $(date +%H:%M:%S.%3N)] $*"; }

# shellcheck source=/dev/null
source "$CONF/node.env"
: "${NODE_NAME:?node.env must set NODE_NAME}" "${NODE_IP:?node.env must set NODE_IP}"

# --- mounts and cgroups ----------------------------------------------------------------------
# The container is not --privileged (real-nodes.ts says why), so Docker mounts /sys and the cgroup
# hierarchies read-only. It has CAP_SYS_ADMIN, so it makes them writable for itself: containerd
# and kubelet create cgroups, and kubelet reads and writes sysfs.
mount -o remount,rw /sys
findmnt -rn -o TARGET | grep "^/sys/fs/cgroup" | while read -r m; do mount -o remount,bind,rw "$m"; done
# kubelet mounts pod volumes with propagation; Docker gives the container a private root.
mount --make-rshared /

# cgroup v1 with a private cgroup namespace: every hierarchy shows this container's own cgroup
# as its root. kubelet gets a root of its own below it (--cgroup-root=/kubelet, as kind does),
# so pods' cgroups are children of this container's cgroup and vanish with it. On cgroup v2 the
# same root is made in the unified hierarchy.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p /sys/fs/cgroup/kubelet
else
  for hierarchy in /sys/fs/cgroup/*/; do
    # The hybrid layout's cgroup2 mount holds no controllers; runc and kubelet use v1 here.
    [ "$(stat -f -c %T "$hierarchy")" = cgroupfs ] || continue
    mkdir -p "$hierarchy/kubelet"
    if [ -f "$hierarchy/cpuset.cpus" ]; then
      # A new cpuset cgroup starts with no CPUs, and joining it fails with ENOSPC.
      cat "$hierarchy/cpuset.cpus" >"$hierarchy/kubelet/cpuset.cpus"
      cat "$hierarchy/cpuset.mems" >"$hierarchy/kubelet/cpuset.mems"
    fi
  done
fi

# --- uplink ----------------------------------------------------------------------------------
# The harness moves eth0 in after `docker run` returns; services started before it would bind
# to nothing (kubelet picks its node IP at start, flanneld its interface).
log "waiting for the uplink eth0 with $NODE_IP"
for _ in $(seq 1 600); do
  ip -4 -o addr show dev eth0 2>/dev/null | grep -qF " $NODE_IP/" && break
  sleep 0.1
done
ip -4 -o addr show dev eth0 | grep -qF " $NODE_IP/" || {
  log "eth0 with $NODE_IP never appeared"
  exit 1
}

# --- supervision -----------------------------------------------------------------------------
# supervise NAME CMD...: run CMD in the background, log to NAME.log, restart it 1 s after it
# exits (as systemd's Restart=always would). The CMD's own PID is in NAME.pid.
supervise() {
  local name=$1
  shift
  (
    while :; do
      "$@" >>"$LOGS/$name.log" 2>&1 &
      echo $! >"$PIDS/$name.pid"
      rc=0
      wait $! || rc=$?
      echo "[kseip-node $(date +%H:%M:%S.%3N)] $name exited with status $rc; restarting in 1 s" >>"$LOGS/$name.log"
      sleep 1
    done
  ) &
}

run_kubelet() {
  local extra=()
  [ -f "$CONF/kubelet-extra-args" ] && mapfile -t extra <"$CONF/kubelet-extra-args"
  exec kubelet --config="$CONF/kubelet.yaml" --kubeconfig="$CONF/kubelet.kubeconfig" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1 "${extra[@]}"
}

run_kube_proxy() {
  local mode
  mode=$(cat "$CONF/kube-proxy-mode")
  echo "[kseip-node $(date +%H:%M:%S.%3N)] starting kube-proxy in $mode mode"
  exec kube-proxy --config="$CONF/kube-proxy-$mode.yaml" --hostname-override="$NODE_NAME" --v=1
}

run_flanneld() {
  exec env NODE_NAME="$NODE_NAME" flanneld --kube-subnet-mgr --kubeconfig-file="$CONF/flannel.kubeconfig" \
    --iface=eth0 --ip-masq --net-config-path="$CONF/net-conf.json" --subnet-file=/run/flannel/subnet.env
}

# The CNI config flannel's CNI plugin would produce: flannel-io/cni-plugin is not served by the Go
# module proxy, so its delegate (bridge + host-local on this node's flannel subnet) is written
# here once flanneld has leased the subnet. containerd notices the file and the node goes Ready.
write_cni_config() {
  until [ -s /run/flannel/subnet.env ]; do sleep 0.2; done
  # shellcheck source=/dev/null
  source /run/flannel/subnet.env
  # FLANNEL_SUBNET is the gateway's address with the prefix (10.244.1.1/24); host-local wants the
  # network itself (10.244.1.0/24), as flannel's CNI plugin passes it.
  local ip=${FLANNEL_SUBNET%/*} len=${FLANNEL_SUBNET#*/} a b c d
  IFS=. read -r a b c d <<<"$ip"
  local n=$(((a << 24 | b << 16 | c << 8 | d) & (0xffffffff << (32 - len)) & 0xffffffff))
  local network="$((n >> 24 & 255)).$((n >> 16 & 255)).$((n >> 8 & 255)).$((n & 255))/$len"
  cat >/etc/cni/net.d/.10-flannel.conflist <<CNI
{
  "cniVersion": "1.0.0",
  "name": "cbr0",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "isDefaultGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "mtu": ${FLANNEL_MTU},
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "${network}" }]],
        "routes": [{ "dst": "${FLANNEL_NETWORK}" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
CNI
  mv /etc/cni/net.d/.10-flannel.conflist /etc/cni/net.d/10-flannel.conflist
  log "CNI config written for subnet $network (mtu $FLANNEL_MTU)"
}

# --- start -----------------------------------------------------------------------------------
log "starting containerd"
supervise containerd containerd --config /etc/containerd/config.toml
for _ in $(seq 1 300); do
  ctr --timeout 2s version >/dev/null 2>&1 && break
  sleep 0.1
done
ctr --timeout 2s version >/dev/null || {
  log "containerd did not come up"
  tail -n 20 "$LOGS/containerd.log"
  exit 1
}

# Images are imported before kubelet starts, so no pod ever sees one missing: the pause and
# workload images baked into this node image, and whatever the harness mounted (the project's).
for tar in /opt/kseip/images/*.tar /var/lib/kseip-images/*.tar; do
  [ -f "$tar" ] || continue
  log "importing $(basename "$tar")"
  ctr -n k8s.io images import "$tar" >/dev/null
done

log "starting kubelet, kube-proxy and flanneld as $NODE_NAME ($NODE_IP)"
supervise kubelet run_kubelet
supervise kube-proxy run_kube_proxy
supervise flanneld run_flanneld
write_cni_config &
touch "$PIDS/started"

# Docker stops the container with SIGTERM to PID 1: end the services before the kernel kills
# everything, so containerd can stop the pods' containers cleanly.
trap 'log "stopping"; kill $(jobs -p) 2>/dev/null; exit 0' TERM INT
wait
