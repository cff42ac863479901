#!/usr/bin/env bash
# Installs (from Debian) and starts clickhouse-server on 127.0.0.1 with a private config.
# usage: scripts/clickhouse.sh start|stop|status   env: OUTRIDER_CLICKHOUSE_HTTP_PORT (18123)
source "$(dirname "$0")/lib.sh"
HTTP_PORT=${OUTRIDER_CLICKHOUSE_HTTP_PORT:-18123}
TCP_PORT=${OUTRIDER_CLICKHOUSE_TCP_PORT:-19000}
DIR=$INFRA_DIR/clickhouse
PIDFILE=$INFRA_DIR/clickhouse.pid

install_server() {
  command -v clickhouse-server >/dev/null && return 0
  log "installing clickhouse-server from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends clickhouse-server clickhouse-client >/dev/null
}

write_config() {
  mkdir -p "$DIR/data" "$DIR/tmp" "$DIR/user_files" "$DIR/format_schemas"
  cat >"$DIR/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$DIR/server.log</log><errorlog>$DIR/error.log</errorlog></logger>
  <http_port>$HTTP_PORT</http_port>
  <tcp_port>$TCP_PORT</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$DIR/data/</path>
  <tmp_path>$DIR/tmp/</tmp_path>
  <user_files_path>$DIR/user_files/</user_files_path>
  <format_schema_path>$DIR/format_schemas/</format_schema_path>
  <users_config>/etc/clickhouse-server/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>5368709120</mark_cache_size>
</yandex>
XML
}

case ${1:-start} in
  start)
    if running "$PIDFILE"; then log "clickhouse already running"; echo "OUTRIDER_TEST_CLICKHOUSE_URL=http://127.0.0.1:$HTTP_PORT"; exit 0; fi
    install_server
    write_config
    log "starting clickhouse-server on 127.0.0.1:$HTTP_PORT"
    setsid clickhouse-server --config-file="$DIR/config.xml" >"$DIR/stdout.log" 2>&1 &
    echo $! >"$PIDFILE"
    deadline=$((SECONDS + 60))
    until curl -fsS "http://127.0.0.1:$HTTP_PORT/ping" >/dev/null 2>&1; do
      if ((SECONDS >= deadline)) || ! running "$PIDFILE"; then
        log "clickhouse did not answer /ping; logs follow"
        tail -n 50 "$DIR/stdout.log" "$DIR/error.log" >&2 2>/dev/null || true
        exit 1
      fi
      sleep 0.2
    done
    echo "OUTRIDER_TEST_CLICKHOUSE_URL=http://127.0.0.1:$HTTP_PORT"
    ;;
  stop) stop_pidfile "$PIDFILE"; log "clickhouse stopped" ;;
  status) running "$PIDFILE" && echo running || { echo stopped; exit 1; } ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
