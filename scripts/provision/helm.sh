#!/usr/bin/env bash
# Step: helm, built from tools/helm (helm.sh/helm/v4 pinned in its go.mod, from the Go module
# proxy), for the chart tests: `helm lint`, `helm template` and the equivalence with the kustomize
# base (test/helm-chart.int.test.ts). Skips itself when go.mod/go.sum and this script are
# unchanged and the binary exists. Records HELM_BIN in .cache/env.
source "$(dirname "$0")/lib.sh"

mod="$REPO_ROOT/tools/helm"
bin="$CACHE_DIR/bin/helm"
version=$(awk '$1 == "require" && $2 == "helm.sh/helm/v4" { print $3 }' "$mod/go.mod")
[ -n "$version" ] || die "cannot read the helm.sh/helm/v4 version from $mod/go.mod"

step_begin helm "helm $version from the Go module proxy (tools/helm)"
# The script is an input too: changing the build flags below must rebuild.
hash=$(inputs_hash "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}")
if stamp_ok helm "$hash" && [ -x "$bin" ]; then
  note="up to date"
else
  command -v go >/dev/null || die "go not found; the packages step installs golang-go"
  # A plain `go build` reports the minor version only ("v4.3"); stamp the pinned one, as helm's
  # own Makefile does. -mod=readonly: the committed go.sum is complete, so a build never edits
  # the repo and a tampered or missing checksum fails instead of being silently re-resolved.
  say "go build, cold ~2-4 min on 2 cores (log: $CACHE_DIR/logs/helm-build.log)"
  ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version"
  ldflags+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  (cd "$mod" && run_logged helm-build env CGO_ENABLED=0 GOFLAGS='-mod=readonly -buildvcs=false' \
    go build -trimpath -ldflags="$ldflags" -o "$bin" helm.sh/helm/v4/cmd/helm) || die "building helm failed"
  stamp_set helm "$hash"
  note="built"
fi
env_set HELM_BIN "$bin"
step_end "$note: $("$bin" version --short) in $bin"
