#!/usr/bin/env bash
# Step: the Kafka broker image the tests and the demo start with testcontainers.
# No registry is reachable, so everything is built here:
#   1. a base image: Debian bookworm + JRE 17 from debootstrap, imported with `docker import`;
#   2. the broker jars from Maven Central (tools/kafka/pom.xml);
#   3. the broker image FROM that base (tools/kafka/Dockerfile + entrypoint.sh).
# Each artifact is named by a hash of its inputs and skipped when it already exists, so a
# second run only inspects two image tags. Records KAFKA_IMAGE in .cache/env.
source "$(dirname "$0")/lib.sh"

KAFKA_DIR=$REPO_ROOT/tools/kafka
WORK=$CACHE_DIR/kafka
mkdir -p "$WORK"
command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "no Docker engine: run scripts/provision.sh docker first"

kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_DIR/pom.xml")
[ -n "$kafka_version" ] || die "no <kafka.version> in $KAFKA_DIR/pom.xml"


# --- 1. base image -------------------------------------------------------------------------
# The recipe is the input: change the suite or the package list and the tag changes with it.
BASE_SUITE=bookworm
BASE_PACKAGES=openjdk-17-jre-headless
base_hash=$(printf '%s\n' "minbase $BASE_SUITE $BASE_PACKAGES" | sha256sum | cut -c1-12)
BASE_IMAGE=kseip/jre17:$BASE_SUITE-$base_hash
step_begin kafka-base "base image $BASE_IMAGE (debootstrap $BASE_SUITE + $BASE_PACKAGES)"
if image_exists "$BASE_IMAGE"; then
  step_end "image exists"
else
  rootfs_tar=$WORK/jre17-$BASE_SUITE-$base_hash.tar
  debootstrap_tar "$rootfs_tar" "$BASE_PACKAGES"
  run_logged kafka-import docker import "$rootfs_tar" "$BASE_IMAGE"
  step_end "imported"
fi

# --- 2. broker jars ------------------------------------------------------------------------
LIBS=$WORK/libs
pom_hash=$(inputs_hash "$KAFKA_DIR/pom.xml")
step_begin kafka-jars "Kafka $kafka_version jars from Maven Central"
if stamp_ok kafka-jars "$pom_hash" && [ -d "$LIBS" ]; then
  step_end "up to date ($(ls "$LIBS" | wc -l) jars)"
else
  command -v mvn >/dev/null || die "mvn not found: run scripts/provision.sh packages first"
  # Start empty: jars of a previous version left beside the new ones would both load.
  rm -rf "$LIBS"
  run_logged kafka-mvn mvn -B -q -f "$KAFKA_DIR/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS"
  [ -f "$LIBS/kafka_2.13-$kafka_version.jar" ] || die "kafka_2.13-$kafka_version.jar missing from $LIBS"
  stamp_set kafka-jars "$pom_hash"
  step_end "$(ls "$LIBS" | wc -l) jars"
fi

# --- 3. broker image -----------------------------------------------------------------------
image_hash=$(printf '%s\n' "$BASE_IMAGE" "$(inputs_hash "$KAFKA_DIR/pom.xml" "$KAFKA_DIR/Dockerfile" \
  "$KAFKA_DIR/entrypoint.sh" "$KAFKA_DIR/log4j2.properties")" | sha256sum | cut -c1-12)
KAFKA_IMAGE=kseip/kafka:$kafka_version-$image_hash
step_begin kafka-image "broker image $KAFKA_IMAGE"
if image_exists "$KAFKA_IMAGE"; then
  step_end "image exists"
else
  # The context is streamed as a tar so the jars need not be copied next to the Dockerfile.
  # DOCKER_BUILDKIT=0: this Docker client has no buildx, and the legacy builder uses the local
  # base image without asking a registry.
  build() {
    tar -C "$KAFKA_DIR" -c Dockerfile entrypoint.sh log4j2.properties -C "$WORK" libs |
      DOCKER_BUILDKIT=0 docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --label "org.opencontainers.image.version=$kafka_version" -t "$KAFKA_IMAGE" -
  }
  run_logged kafka-build build
  step_end "built"
fi
env_set KAFKA_IMAGE "$KAFKA_IMAGE"
env_set KAFKA_VERSION "$kafka_version"
say "KAFKA_IMAGE=$KAFKA_IMAGE"
