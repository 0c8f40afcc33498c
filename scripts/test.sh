#!/usr/bin/env bash
# Runs the checks and test tiers in one place: typecheck, lint, then node:test over the tiers
# given as arguments (unit, int, e2e; default all). Int and e2e tests start real Kafka, a real
# kube-apiserver and real network namespaces, so files run one at a time on this 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PWD/.cache/bin:$PATH"
# testcontainers' reaper image cannot be pulled here; every test stops its own containers.
export TESTCONTAINERS_RYUK_DISABLED=true

tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(unit int e2e)

step() { printf '\n== %s ==\n' "$*"; }
step "typecheck"; tsc -p tsconfig.json
step "lint"
eslint .
prettier --check . >/dev/null

globs=()
for t in "${tiers[@]}"; do globs+=("src/**/*.$t.test.ts" "test/**/*.$t.test.ts"); done
step "tests: ${tiers[*]}"
# --test-force-exit: a test file whose tests all finished must not keep the run waiting on a
# client left retrying in the background (kafkajs reconnects to a stopped broker forever).
exec node --disable-warning=ExperimentalWarning --test --test-concurrency=1 --test-force-exit \
  --test-timeout=600000 --test-reporter=spec "${globs[@]}"
