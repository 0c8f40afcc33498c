#!/usr/bin/env bash
# Step: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, and for the real-node cluster kubelet and kube-proxy, built from tools/kube (k8s.io/kubernetes
# pinned in its go.mod). kubectl comes from the same module so it always matches the server; the
# machine's own kubectl is not used. Skips itself when go.mod/go.sum are unchanged and the
# binaries exist. Records KUBE_BIN_DIR in .cache/env.
source "$(dirname "$0")/lib.sh"

mod="$REPO_ROOT/tools/kube"
bindir="$CACHE_DIR/bin"
bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$mod/go.mod")
[[ $version =~ ^v([0-9]+)\.([0-9]+)\. ]] || die "cannot read the k8s.io/kubernetes version from $mod/go.mod"

step_begin kube "${bins[*]} $version from the Go module proxy (tools/kube)"
# The script is an input too: changing the build flags below must rebuild.
hash=$(inputs_hash "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}")
all_built() { for b in "${bins[@]}"; do [ -x "$bindir/$b" ] || return 1; done; }
if stamp_ok kube "$hash" && all_built; then
  env_set KUBE_BIN_DIR "$bindir"
  step_end "up to date in $bindir"
  exit 0
fi
# A plain `go build` reports v0.0.0-master; stamp the real version the way Kubernetes' own
# release build (hack/lib/version.sh) does, into both the server and the client version packages.
ldflags='-s -w'
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=${BASH_REMATCH[1]}"
  ldflags+=" -X $pkg.gitMinor=${BASH_REMATCH[2]} -X $pkg.gitTreeState=clean"
done

say "go build, cold ~5-8 min on 2 cores, warm (Go build cache) ~1 min"
go_build kube-build "$mod" 0 "$bindir/" "$ldflags" "${bins[@]/#/k8s.io/kubernetes/cmd/}" ||
  die "building ${bins[*]} failed"
stamp_set kube "$hash"
env_set KUBE_BIN_DIR "$bindir"
step_end "$("$bindir/kube-apiserver" --version)"
