#!/usr/bin/env bash
# Step: kube-apiserver, kube-controller-manager and kubectl, built from tools/kube (k8s.io/kubernetes
# pinned in its go.mod). kubectl comes from the same module so it always matches the server; the
# machine's own kubectl is not used. Skips itself when go.mod/go.sum are unchanged and the
# binaries exist. Records KUBE_BIN_DIR in .cache/env.
source "$(dirname "$0")/lib.sh"

mod="$REPO_ROOT/tools/kube"
bindir="$CACHE_DIR/bin"
bins=(kube-apiserver kube-controller-manager kubectl)
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
command -v go >/dev/null || die "go not found; the packages step installs golang-go"

# A plain `go build` reports v0.0.0-master; stamp the real version the way Kubernetes' own
# release build (hack/lib/version.sh) does, into both the server and the client version packages.
ldflags='-s -w'
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=${BASH_REMATCH[1]}"
  ldflags+=" -X $pkg.gitMinor=${BASH_REMATCH[2]} -X $pkg.gitTreeState=clean"
done

cd "$mod"
log="$CACHE_DIR/logs/kube-build.log"
say "go build, cold ~5 min on 2 cores, warm (Go build cache) ~1 min (log: $log)"
# -mod=readonly: the committed go.sum is complete, so a build never edits the repo and a
# tampered or missing checksum fails instead of being silently re-resolved.
run_logged kube-build env CGO_ENABLED=0 GOFLAGS='-mod=readonly -buildvcs=false' \
  go build -trimpath -ldflags="$ldflags" -o "$bindir/" \
  "${bins[@]/#/k8s.io/kubernetes/cmd/}" &
build=$!
# Heartbeat, so a long cold build does not look hung.
SECONDS=0
while kill -0 "$build" 2>/dev/null; do
  sleep 1
  if ((SECONDS % 30 == 0)); then
    say "  still building (${SECONDS}s, $(grep -c '^go: downloading' "$log" 2>/dev/null || true) modules downloaded)"
  fi
done
wait "$build" || die "building ${bins[*]} failed"
stamp_set kube "$hash"
env_set KUBE_BIN_DIR "$bindir"
step_end "$("$bindir/kube-apiserver" --version)"
