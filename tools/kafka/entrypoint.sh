#!/bin/sh
# Entrypoint of the test/demo Kafka image: one KRaft node that is broker and controller at once.
# Writes server.properties from the environment, formats the storage unless it already is (so a
# container stop/start keeps its topics, offsets and transactions), then execs the broker.
# The image build runs it once with --format-only: formatting is a JVM start of its own (~1 s
# of a ~3 s broker start on 2 cores), and its result depends on no port, so it is baked in.
# The container runs with host networking, so every listener binds 127.0.0.1 and the ports
# come from the caller, who picked free ones:
#   KAFKA_PORT             client listener (required)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener (required)
#   KAFKA_HEAP_OPTS        default -Xms256m -Xmx512m
#   KAFKA_JVM_OPTS         extra JVM flags (default tuned for a fast start on 2 cores)
#   KAFKA_EXTRA_PROPERTIES extra server.properties lines, appended last so they win
#   KAFKA_NODES_PORT       optional second client listener NODES on 127.0.0.1, for clients in
#   KAFKA_NODES_ADVERTISED   network namespaces that reach it through a relay: it advertises
#                            this host:port (e.g. the relay's address on the node network)
set -eu

: "${KAFKA_PORT:?KAFKA_PORT (client listener port) is required}"
: "${KAFKA_CONTROLLER_PORT:?KAFKA_CONTROLLER_PORT (KRaft controller port) is required}"
# Fixed, because the storage is formatted at image build time: every container is a cluster of
# its own, so sharing the id harms nothing.
KAFKA_CLUSTER_ID=MkU3OEVBNTcwNTJENDM2Qk
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
listeners="PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}"
advertised="PLAINTEXT://127.0.0.1:${KAFKA_PORT}"
protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
if [ -n "${KAFKA_NODES_PORT:-}" ]; then
  : "${KAFKA_NODES_ADVERTISED:?KAFKA_NODES_ADVERTISED is required with KAFKA_NODES_PORT}"
  listeners="$listeners,NODES://127.0.0.1:${KAFKA_NODES_PORT}"
  advertised="$advertised,NODES://${KAFKA_NODES_ADVERTISED}"
  protocols="$protocols,NODES:PLAINTEXT"
fi
# Serial GC and C1-only JIT: a test broker starts faster and competes less for 2 cores with the
# tests it serves; its throughput needs are small.
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto}
# Inside the container's own filesystem: survives stop/start, vanishes with the container.
DATA_DIR=/var/lib/kafka/data
CONFIG=/opt/kafka/config/server.properties

mkdir -p "$DATA_DIR"
cat >"$CONFIG" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${KAFKA_CONTROLLER_PORT}
listeners=${listeners}
advertised.listeners=${advertised}
listener.security.protocol.map=${protocols}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=${DATA_DIR}
# One node: internal topics with more replicas than brokers never come up, and consumer groups
# and transactions then hang waiting for them.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests join groups constantly; the default 3 s delay would be paid by every first join.
group.initial.rebalance.delay.ms=0
# Topics exist only when created on purpose (partition counts and compaction are part of the design).
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
PROPS
if [ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]; then
  printf '%s\n' "$KAFKA_EXTRA_PROPERTIES" >>"$CONFIG"
fi

CP='/opt/kafka/libs/*'
LOG_OPTS="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties"
# shellcheck disable=SC2086 # the option variables are word lists on purpose
if [ ! -f "$DATA_DIR/meta.properties" ]; then
  echo "[kseip-kafka] formatting $DATA_DIR for cluster $KAFKA_CLUSTER_ID"
  java $KAFKA_JVM_OPTS $LOG_OPTS -cp "$CP" kafka.tools.StorageTool format \
    -t "$KAFKA_CLUSTER_ID" -c "$CONFIG" --ignore-formatted
else
  echo "[kseip-kafka] $DATA_DIR already formatted; keeping its data"
fi
[ "${1:-}" != --format-only ] || exit 0
echo "[kseip-kafka] starting broker on 127.0.0.1:${KAFKA_PORT} (controller 127.0.0.1:${KAFKA_CONTROLLER_PORT})"
# shellcheck disable=SC2086
exec java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS $LOG_OPTS -Djava.awt.headless=true \
  -cp "$CP" kafka.Kafka "$CONFIG"
