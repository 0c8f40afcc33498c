#!/usr/bin/env bash
# Provisions everything the demo and the tests need, on a fresh machine or a warm one.
# Idempotent: each step skips itself when its cached result is still valid.
# Usage: scripts/provision.sh [STEP...]   (default: all steps, in order)
source "$(dirname "$0")/provision/lib.sh"

ALL_STEPS=(packages docker node kube etcd kafka helm flannel node-image kube-node)
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=("${ALL_STEPS[@]}")

started=$(date +%s)
for s in "${steps[@]}"; do
  [ -f "$REPO_ROOT/scripts/provision/$s.sh" ] || die "unknown step '$s' (steps: ${ALL_STEPS[*]})"
  bash "$REPO_ROOT/scripts/provision/$s.sh"
done
say "all steps done in $(($(date +%s) - started))s; artifacts in $CACHE_DIR"
