# Shared helpers for the provisioning steps: progress lines with timings, a cache folder,
# and "stamp" files that let a step skip itself when its inputs have not changed.
# Sourced by scripts/provision.sh and by each step; never run directly.

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Everything expensive lives here (git-ignored). KSEIP_CACHE moves it, e.g. to share between clones.
CACHE_DIR=${KSEIP_CACHE:-$REPO_ROOT/.cache}
mkdir -p "$CACHE_DIR/bin" "$CACHE_DIR/logs" "$CACHE_DIR/stamps"
export PATH="$CACHE_DIR/bin:$PATH"

_step_started=0
say() { printf '[provision %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# step_begin NAME DESCRIPTION: announce a step and start its clock.
step_begin() { _step_name=$1; _step_started=$(date +%s%N); say "▶ $1: $2"; }
# step_end [NOTE]: report how long the step took.
step_end() {
  local ms=$((($(date +%s%N) - _step_started) / 1000000))
  say "✔ $_step_name done in $(awk "BEGIN{printf \"%.1f\", $ms/1000}")s${1:+ ($1)}"
}

# inputs_hash FILE...: a short hash over the given files' contents, used to name cached artifacts
# so that editing a pom, go.mod or Dockerfile rebuilds exactly what depends on it.
inputs_hash() { cat "$@" | sha256sum | cut -c1-12; }

# stamp_ok NAME HASH: true when step NAME already completed with these inputs.
stamp_ok() { [ -f "$CACHE_DIR/stamps/$1" ] && [ "$(cat "$CACHE_DIR/stamps/$1")" = "$2" ]; }
stamp_set() { echo "$2" >"$CACHE_DIR/stamps/$1"; }

# run_logged LOGNAME CMD...: run a noisy command with its output in a log file; on failure show
# the tail of the log so the reason is visible without digging.
run_logged() {
  local log="$CACHE_DIR/logs/$1.log"
  shift
  if ! "$@" >"$log" 2>&1; then
    say "command failed: $* (log: $log); last lines:"
    tail -n 30 "$log" >&2
    return 1
  fi
}

# env_set KEY VALUE: record an artifact location in .cache/env for the TypeScript dev environment.
env_set() {
  local file="$CACHE_DIR/env"
  touch "$file"
  grep -v "^$1=" "$file" >"$file.tmp" || true
  echo "$1=$2" >>"$file.tmp"
  mv "$file.tmp" "$file"
}
