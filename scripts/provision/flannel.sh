#!/usr/bin/env bash
# Step: flanneld, the CNI daemon of the real-node cluster (vxlan backend, kube subnet manager),
# built from tools/flannel (version pinned in its go.mod). CGO is on because flannel's amd64
# UDP backend needs it; the binary is linked statically so it runs in the node image unchanged.
# Skips itself when its inputs are unchanged and the binary exists. Records FLANNELD_BIN.
source "$(dirname "$0")/lib.sh"

mod="$REPO_ROOT/tools/flannel"
bin="$CACHE_DIR/bin/flanneld"
version=$(awk '$1 == "require" && $2 == "github.com/flannel-io/flannel" { print $3 }' "$mod/go.mod")

step_begin flannel "flanneld $version from the Go module proxy (tools/flannel)"
command -v gcc >/dev/null || die "gcc not found; the packages step installs it"
# netgo/osusergo: the pure-Go resolver and user lookup, so the static binary needs no glibc NSS.
go_binary_step flannel FLANNELD_BIN "$mod" 1 \
  "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$version -extldflags -static" \
  github.com/flannel-io/flannel -tags netgo,osusergo
