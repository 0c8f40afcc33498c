#!/usr/bin/env bash
# Step: npm dependencies, including the Node 24 runtime (npm package `node`) the scripts run on.
source "$(dirname "$0")/lib.sh"

step_begin node "npm dependencies and the Node 24 runtime"
cd "$REPO_ROOT"
hash=$(inputs_hash package.json package-lock.json)
if stamp_ok node "$hash" && [ -x node_modules/.bin/node ]; then
  step_end "up to date ($(node_modules/.bin/node --version))"
  exit 0
fi
command -v npm >/dev/null || die "npm not found: install Node.js (any version with npm) first"
run_logged npm-ci npm ci --no-audit --no-fund
stamp_set node "$hash"
step_end "node $(node_modules/.bin/node --version)"
