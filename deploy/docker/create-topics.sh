#!/bin/bash
# create-topics.sh — the one-shot `init` service of deploy/docker-compose.yml:
# creates inboxflow's three topics unless they exist, then lists them.
#
# Environment (defaults in brackets):
#   BOOTSTRAP_SERVER    Kafka bootstrap server        [kafka:19092]
#   WEBHOOK_PARTITIONS  partitions of the webhook topic; more than you will
#                       ever run processors (only set at creation)  [6]
#   WEBHOOK_TOPIC, DEAD_LETTER_TOPIC, UNROUTED_TOPIC
#                       topic names (as kafka.* in the config)
#                       [inboxflow.webhooks, inboxflow.webhooks.dlq, inboxflow.webhooks.unrouted]
#   KAFKA_TOPICS        the kafka-topics tool         [/opt/kafka/bin/kafka-topics.sh]
# Records reach 4 MiB plus headers, so every topic accepts 5 MiB records.
set -euo pipefail

BOOTSTRAP_SERVER=${BOOTSTRAP_SERVER:-kafka:19092}
WEBHOOK_PARTITIONS=${WEBHOOK_PARTITIONS:-6}
WEBHOOK_TOPIC=${WEBHOOK_TOPIC:-inboxflow.webhooks}
DEAD_LETTER_TOPIC=${DEAD_LETTER_TOPIC:-inboxflow.webhooks.dlq}
UNROUTED_TOPIC=${UNROUTED_TOPIC:-inboxflow.webhooks.unrouted}
KAFKA_TOPICS=${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}
MAX_MESSAGE_BYTES=5242880

[[ $WEBHOOK_PARTITIONS =~ ^[1-9][0-9]*$ ]] ||
  { echo "create-topics: WEBHOOK_PARTITIONS must be a positive integer, got '$WEBHOOK_PARTITIONS'" >&2; exit 2; }

create() {
  local topic=$1 partitions=$2
  "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP_SERVER" --create --if-not-exists \
    --topic "$topic" --partitions "$partitions" --replication-factor 1 \
    --config max.message.bytes="$MAX_MESSAGE_BYTES"
  echo "create-topics: $topic ready"
}

create "$WEBHOOK_TOPIC" "$WEBHOOK_PARTITIONS"
create "$DEAD_LETTER_TOPIC" 1
create "$UNROUTED_TOPIC" 1
for topic in "$WEBHOOK_TOPIC" "$DEAD_LETTER_TOPIC" "$UNROUTED_TOPIC"; do
  "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP_SERVER" --describe --topic "$topic"
done
