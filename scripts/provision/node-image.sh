#!/usr/bin/env bash
# Step (not in the default steps; test/docker-image.int.test.ts calls it): a local stand-in for the
# official `node:24-slim` image, so that `docker build` of the project's Dockerfile works on a
# machine that cannot pull images. Built from:
#   1. debootstrap bookworm minbase (the official image is Debian bookworm-slim too);
#   2. the Node 24 binary the npm package `node` put in node_modules/.bin/node;
#   3. npm itself (the copy that runs this machine's `npm`), as /usr/local/lib/node_modules/npm,
#      which is where the official image keeps it, so `npm ci` in the Dockerfile works.
# Like the official image it has a `node` user (uid 1000). The root filesystem is cached as a tar
# under .cache/node-image and the image is skipped when a recipe-hash label matches, so a second
# run only inspects one image. Records NODE_BASE_IMAGE in .cache/env.
source "$(dirname "$0")/lib.sh"

WORK=$CACHE_DIR/node-image
mkdir -p "$WORK"
command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "no Docker engine: run scripts/provision.sh docker first"

TAG=node:24-slim
NODE_BIN=$(readlink -f "$REPO_ROOT/node_modules/.bin/node")
[ -x "$NODE_BIN" ] || die "$REPO_ROOT/node_modules/.bin/node missing: run scripts/provision.sh node first"
node_version=$("$NODE_BIN" --version)
case "$node_version" in v24.*) ;; *) die "node_modules/.bin/node is $node_version, not Node 24" ;; esac
NPM_DIR=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
[ -f "$NPM_DIR/bin/npm-cli.js" ] || die "npm not found next to $(command -v npm)"
npm_version=$(node -p "require('$NPM_DIR/package.json').version" 2>/dev/null || "$NODE_BIN" -p "require('$NPM_DIR/package.json').version")

SUITE=bookworm
# This machine reaches the registries through a TLS-inspecting proxy whose CA it trusts
# (/usr/local/share/ca-certificates); the stand-in trusts the same CAs, or `npm ci` in the
# Dockerfile fails with SELF_SIGNED_CERT_IN_CHAIN. The official image has no such CA, and needs none.
EXTRA_CAS=(/usr/local/share/ca-certificates/*.crt)
[ -e "${EXTRA_CAS[0]}" ] || EXTRA_CAS=()
cas_hash=$( (cat /dev/null "${EXTRA_CAS[@]}") | sha256sum | cut -c1-12)
recipe=$(printf '%s\n' "minbase $SUITE ca-certificates node $node_version npm $npm_version cas $cas_hash v2" | sha256sum | cut -c1-12)

step_begin node-image "$TAG stand-in (debootstrap $SUITE + node $node_version + npm $npm_version)"
if [ "$(docker image inspect -f '{{ index .Config.Labels "kseip.recipe" }}' "$TAG" 2>/dev/null)" = "$recipe" ]; then
  step_end "image exists"
  env_set NODE_BASE_IMAGE "$TAG"
  exit 0
fi

base_tar=$WORK/$SUITE-minbase.tar
# ca-certificates: npm ci talks to the registry over TLS (the official image has them too).
debootstrap_tar "$base_tar" ca-certificates

# Node and npm are appended to the same tar, laid out like the official image. Only new paths are
# named: docker import rejects a tar that holds a path (e.g. ./usr/local/bin) twice.
stage=$WORK/stage
rm -rf "$stage"
mkdir -p "$stage/usr/local/bin" "$stage/usr/local/lib/node_modules"
cp "$NODE_BIN" "$stage/usr/local/bin/node"
cp -a "$NPM_DIR" "$stage/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/usr/local/bin/npx"
full_tar=$WORK/image.tar
cp "$base_tar" "$full_tar.tmp"
tar --numeric-owner --owner=0 --group=0 -C "$stage" -rf "$full_tar.tmp" \
  ./usr/local/bin/node ./usr/local/bin/npm ./usr/local/bin/npx ./usr/local/lib/node_modules
mv "$full_tar.tmp" "$full_tar"
rm -rf "$stage"

# The `node` user (uid/gid 1000) and the environment of the official image.
imported=kseip/node-rootfs:$recipe
run_logged node-image-import docker import "$full_tar" "$imported"
ctx=$WORK/context
rm -rf "$ctx"
mkdir -p "$ctx/cas"
[ ${#EXTRA_CAS[@]} -eq 0 ] || cp "${EXTRA_CAS[@]}" "$ctx/cas/"
printf '%s\n' \
  "FROM $imported" \
  'COPY cas/ /usr/local/share/ca-certificates/' \
  'RUN update-ca-certificates >/dev/null && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node' \
  "ENV NODE_VERSION=${node_version#v} PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  "LABEL kseip.recipe=$recipe" \
  'CMD ["node"]' >"$ctx/Dockerfile"
build() { DOCKER_BUILDKIT=0 docker build -t "$TAG" "$ctx"; }
run_logged node-image-build build
docker run --rm "$TAG" node -e 'process.exit(process.versions.node.startsWith("24.") ? 0 : 1)' ||
  die "$TAG does not run Node 24"
rm -rf "$full_tar" "$ctx"
step_end "built"
env_set NODE_BASE_IMAGE "$TAG"
say "NODE_BASE_IMAGE=$TAG"
