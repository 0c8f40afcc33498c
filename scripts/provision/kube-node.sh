#!/usr/bin/env bash
# Step: the images of the real-node cluster (src/devenv/real-nodes.ts), all built here because no
# registry is reachable:
#   kseip/pause:3.10      the pod sandbox: tools/kube-node/pause.c, linked statically;
#   kseip/busybox:1.35    the workload image: Debian's static busybox with its applet links;
#   kseip/kube-node:HASH  a node: Debian bookworm with Debian's containerd 1.6, runc and CNI
#                         plugins, nftables, iptables, conntrack, iproute2; kubelet and kube-proxy
#                         from tools/kube, flanneld from tools/flannel; tools/kube-node's
#                         entrypoint and containerd config; the two images above as tars to
#                         import into the node's containerd at start.
# The node image is named by a hash of all of that and skipped when it exists, so a second run
# only inspects one image. Records KUBE_NODE_IMAGE and WORKLOAD_IMAGE in .cache/env.
source "$(dirname "$0")/lib.sh"

NODE_DIR=$REPO_ROOT/tools/kube-node
WORK=$CACHE_DIR/kube-node
mkdir -p "$WORK"
command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "no Docker engine: run scripts/provision.sh docker first"
KUBE_BIN_DIR=$CACHE_DIR/bin
for b in kubelet kube-proxy flanneld; do
  [ -x "$KUBE_BIN_DIR/$b" ] || die "$KUBE_BIN_DIR/$b missing: run scripts/provision.sh kube flannel first"
done
BUSYBOX=/bin/busybox
# Debian's busybox-static: the workload image has no libc, so a dynamically linked one would not run.
[ -x "$BUSYBOX" ] && ! ldd "$BUSYBOX" >/dev/null 2>&1 || die "$BUSYBOX is missing or not static: the packages step installs busybox-static"

PAUSE_IMAGE=kseip/pause:3.10
WORKLOAD_IMAGE=kseip/busybox:1.35
BASE_PACKAGES=containerd,runc,containernetworking-plugins,iproute2,nftables,iptables,conntrack,procps,ca-certificates,tcpdump
base_hash=$(printf '%s\n' "minbase bookworm $BASE_PACKAGES" | sha256sum | cut -c1-12)
BASE_IMAGE=kseip/kube-node-base:bookworm-$base_hash
recipe=$( (
  echo "$BASE_IMAGE"
  cat "$NODE_DIR/entrypoint.sh" "$NODE_DIR/containerd.toml" "$NODE_DIR/pause.c" "${BASH_SOURCE[0]}"
  sha256sum "$KUBE_BIN_DIR/kubelet" "$KUBE_BIN_DIR/kube-proxy" "$KUBE_BIN_DIR/flanneld" "$BUSYBOX" | cut -d' ' -f1
) | sha256sum | cut -c1-12)
NODE_IMAGE=kseip/kube-node:$recipe

step_begin kube-node "node image $NODE_IMAGE (containerd, kubelet, kube-proxy, flanneld) + pause + busybox"
if image_exists "$NODE_IMAGE"; then
  env_set KUBE_NODE_IMAGE "$NODE_IMAGE"
  env_set WORKLOAD_IMAGE "$WORKLOAD_IMAGE"
  step_end "image exists"
  exit 0
fi

if ! image_exists "$BASE_IMAGE"; then
  base_tar=$WORK/kube-node-base-$base_hash.tar
  debootstrap_tar "$base_tar" "$BASE_PACKAGES"
  run_logged kube-node-import docker import "$base_tar" "$BASE_IMAGE"
fi

ctx=$WORK/context
rm -rf "$ctx"
mkdir -p "$ctx/images" "$ctx/stage/pause" "$ctx/stage/busybox/bin"
# One-binary images: a tar of the binary (and busybox's applet links), imported and saved again
# so the node's containerd can import them as ordinary image archives.
command -v gcc >/dev/null || die "gcc not found; the packages step installs it"
run_logged kube-node-pause gcc -Os -static -Wall -Werror -o "$ctx/stage/pause/pause" "$NODE_DIR/pause.c"
cp "$BUSYBOX" "$ctx/stage/busybox/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$ctx/stage/busybox/bin/$applet"
done
run_logged kube-node-pause-import docker import -c 'ENTRYPOINT ["/pause"]' - "$PAUSE_IMAGE" < <(tar -C "$ctx/stage/pause" -c .)
run_logged kube-node-busybox-import docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$WORKLOAD_IMAGE" \
  < <(tar -C "$ctx/stage/busybox" -c .)
docker save -o "$ctx/images/pause.tar" "$PAUSE_IMAGE"
docker save -o "$ctx/images/busybox.tar" "$WORKLOAD_IMAGE"
rm -rf "$ctx/stage"

cp "$KUBE_BIN_DIR/kubelet" "$KUBE_BIN_DIR/kube-proxy" "$KUBE_BIN_DIR/flanneld" "$ctx/"
cp "$NODE_DIR/entrypoint.sh" "$NODE_DIR/containerd.toml" "$ctx/"
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
COPY kubelet kube-proxy flanneld /usr/local/bin/
COPY entrypoint.sh /usr/local/bin/kseip-node-entrypoint
COPY containerd.toml /etc/containerd/config.toml
COPY images/ /opt/kseip/images/
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
STOPSIGNAL SIGTERM
LABEL kseip.recipe=$recipe
ENTRYPOINT ["/usr/local/bin/kseip-node-entrypoint"]
DOCKERFILE
# DOCKER_BUILDKIT=0: this Docker client has no buildx, and the legacy builder uses the local
# base image without asking a registry.
build() { DOCKER_BUILDKIT=0 docker build -t "$NODE_IMAGE" "$ctx"; }
run_logged kube-node-build build
rm -rf "$ctx"
env_set KUBE_NODE_IMAGE "$NODE_IMAGE"
env_set WORKLOAD_IMAGE "$WORKLOAD_IMAGE"
step_end "built"
