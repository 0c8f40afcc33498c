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
  # Under a lock: several provisioning runs (e.g. two clones sharing KSEIP_CACHE) may record
  # artifacts at once, and an unlocked read-modify-write loses one of the entries.
  (
    flock 9
    touch "$file"
    grep -v "^$1=" "$file" >"$file.tmp.$$" || true
    echo "$1=$2" >>"$file.tmp.$$"
    mv "$file.tmp.$$" "$file"
  ) 9>"$file.lock"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# debootstrap_tar TAR PACKAGES: a Debian bookworm minbase root filesystem with the
# comma-separated PACKAGES, kept as TAR so that re-importing it (a wiped Docker data dir) costs
# seconds instead of a new debootstrap. No-op when TAR exists; name TAR after its recipe.
debootstrap_tar() {
  local tar=$1 packages=$2
  [ -s "$tar" ] && return 0
  command -v debootstrap >/dev/null || die "debootstrap not found: run scripts/provision.sh packages first"
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  local rootfs=$tar.rootfs
  rm -rf "$rootfs"
  say "debootstrap bookworm + $packages into $rootfs (about 30-90 s)"
  run_logged "debootstrap-$(basename "$tar" .tar)" debootstrap --variant=minbase --include="$packages" \
    bookworm "$rootfs" http://deb.debian.org/debian
  # The .debs are only needed to install; dropping them shrinks the image by a third.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar --numeric-owner -C "$rootfs" -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  rm -rf "$rootfs"
}

# go_build LOGNAME MODULE_DIR CGO OUT_DIR_OR_FILE LDFLAGS PACKAGE...: go build inside a pinned
# tools/ module, with a heartbeat so that a long cold build does not look hung.
# -mod=readonly: the committed go.sum is complete, so a build never edits the repo and a
# tampered or missing checksum fails instead of being silently re-resolved.
go_build() {
  local logname=$1 mod=$2 cgo=$3 out=$4 ldflags=$5
  shift 5
  command -v go >/dev/null || die "go not found; the packages step installs golang-go"
  local log="$CACHE_DIR/logs/$logname.log"
  (cd "$mod" && run_logged "$logname" env CGO_ENABLED="$cgo" GOFLAGS='-mod=readonly -buildvcs=false' \
    go build -trimpath -ldflags="$ldflags" -o "$out" "$@") &
  local build=$! waited=0
  while kill -0 "$build" 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
    ((waited % 30 != 0)) || say "  still building (${waited}s, log: $log)"
  done
  wait "$build"
}

# go_binary_step STEP ENV_KEY MODULE_DIR CGO LDFLAGS PACKAGE [go build flags...]: a step that
# builds one binary (the caller's $bin) from a pinned tools/ module;
# skipped while the module's go.mod/go.sum and the calling script are unchanged and the binary
# exists. Records ENV_KEY=$bin in .cache/env. The caller has run step_begin.
go_binary_step() {
  local step=$1 key=$2 mod=$3 cgo=$4 ldflags=$5 pkg=$6
  shift 6
  # The calling script is an input too: changing its build flags must rebuild.
  local hash
  hash=$(inputs_hash "$mod/go.mod" "$mod/go.sum" "$0")
  if stamp_ok "$step" "$hash" && [ -x "$bin" ]; then
    env_set "$key" "$bin"
    step_end "up to date: $bin"
    return 0
  fi
  say "go build (log: $CACHE_DIR/logs/$step-build.log)"
  go_build "$step-build" "$mod" "$cgo" "$bin" "$ldflags" "$@" "$pkg" || die "building $pkg failed"
  stamp_set "$step" "$hash"
  env_set "$key" "$bin"
  step_end "$("$bin" --version | head -n 1)"
}
