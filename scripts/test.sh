#!/usr/bin/env bash
# The project's test command (the README's and the CI's): starts a real Kafka-protocol broker
# and a real ClickHouse server on 127.0.0.1, runs every test including those that need them,
# and stops the servers again.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

started=()
cleanup() { for s in "${started[@]}"; do "$REPO_ROOT/scripts/$s.sh" stop || true; done; }
trap cleanup EXIT

for s in kafka clickhouse; do
  if ! "$REPO_ROOT/scripts/$s.sh" status >/dev/null 2>&1; then started+=("$s"); fi
  export "$("$REPO_ROOT/scripts/$s.sh" start | tail -n 1)"
done
export OUTRIDER_TEST_KAFKA_BROKERS OUTRIDER_TEST_CLICKHOUSE_URL
# The broker binary, for fault tests that start (and kill) a private broker.
OUTRIDER_TEST_TANSU=$("$REPO_ROOT/scripts/kafka.sh" bin | tail -n 1)
export OUTRIDER_TEST_TANSU

cargo test --workspace --locked -- --include-ignored "$@"
