#!/usr/bin/env bash
# Step: the etcd server behind the test kube-apiserver, built from tools/etcd (version pinned in
# its go.mod; Debian's etcd 3.4 is too old for Kubernetes 1.34). Skips itself when go.mod/go.sum
# are unchanged and the binary exists. Records ETCD_BIN in .cache/env.
source "$(dirname "$0")/lib.sh"

mod="$REPO_ROOT/tools/etcd"
bin="$CACHE_DIR/bin/etcd"
version=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" { print $3 }' "$mod/go.mod")

step_begin etcd "etcd $version from the Go module proxy (tools/etcd)"
go_binary_step etcd ETCD_BIN "$mod" 0 '-s -w' go.etcd.io/etcd/server/v3
