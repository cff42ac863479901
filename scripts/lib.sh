# Shared helpers for the infra scripts. Sourced, not run.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INFRA_DIR=${OUTRIDER_INFRA_DIR:-$REPO_ROOT/.ci-work}
mkdir -p "$INFRA_DIR"

log() { echo "[infra] $*" >&2; }

# wait_for_port PORT SECONDS: until something accepts on 127.0.0.1:PORT.
wait_for_port() {
  local port=$1 deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.2
  done
}

# stop_pidfile FILE: stops the process recorded in FILE, if it still runs.
stop_pidfile() {
  local file=$1 pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
