#!/usr/bin/env bash
# Step: the etcd server behind the test kube-apiserver, built from tools/etcd (version pinned in
# its go.mod; Debian's etcd 3.4 is too old for Kubernetes 1.34). Skips itself when go.mod/go.sum
# are unchanged and the binary exists. Records ETCD_BIN in .cache/env.
source "$(dirname "$0")/lib.sh"

mod="$REPO_ROOT/tools/etcd"
bin="$CACHE_DIR/bin/etcd"
version=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" { print $3 }' "$mod/go.mod")

step_begin etcd "etcd $version from the Go module proxy (tools/etcd)"
# The script is an input too: changing the build flags below must rebuild.
hash=$(inputs_hash "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}")
if stamp_ok etcd "$hash" && [ -x "$bin" ]; then
  env_set ETCD_BIN "$bin"
  step_end "up to date: $bin"
  exit 0
fi
say "go build (log: $CACHE_DIR/logs/etcd-build.log)"
go_build etcd-build "$mod" 0 "$bin" '-s -w' go.etcd.io/etcd/server/v3
stamp_set etcd "$hash"
env_set ETCD_BIN "$bin"
step_end "$("$bin" --version | head -n 1)"
