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
hash=$(inputs_hash "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}")
if stamp_ok flannel "$hash" && [ -x "$bin" ]; then
  env_set FLANNELD_BIN "$bin"
  step_end "up to date: $bin"
  exit 0
fi
command -v gcc >/dev/null || die "gcc not found; the packages step installs it"
say "go build, cold ~2-3 min on 2 cores"
# netgo/osusergo: the pure-Go resolver and user lookup, so the static binary needs no glibc NSS.
go_build flannel-build "$mod" 1 "$bin" \
  "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$version -extldflags -static" \
  -tags netgo,osusergo github.com/flannel-io/flannel || die "building flanneld failed"
stamp_set flannel "$hash"
env_set FLANNELD_BIN "$bin"
step_end "$("$bin" --version)"
