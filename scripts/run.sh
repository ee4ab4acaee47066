#!/usr/bin/env bash
# `make run`: install what is missing, migrate, then run in the foreground
#   Temporal dev server + Web UI, the worker and the API. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
# Write .pyc files even where the environment says not to: the worker's sandbox re-imports
# workflow modules per instance, and without bytecode each import compiles the source again.
unset PYTHONDONTWRITEBYTECODE
scripts/bootstrap.sh

export DATA_DIR=${DATA_DIR:-$PWD/.data}
mkdir -p -m 700 "$DATA_DIR"   # patient data and secrets: the owner only
TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
TEMPORAL_HOST=${TEMPORAL_ADDRESS%:*}
TEMPORAL_PORT=${TEMPORAL_ADDRESS##*:}
UI_PORT=${TEMPORAL_UI_PORT:-8233}
API_HOST=${API_HOST:-127.0.0.1}
API_PORT=${API_PORT:-8000}
J=.venv/bin/journeys

$J migrate
$J ensure-admin

pids=()
cleanup() {
  local rc=$?
  trap - INT TERM EXIT
  echo; echo "==> stopping" >&2
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT TERM   # Ctrl-C is the normal way to stop: not an error

wait_port() {  # host port name seconds
  for _ in $(seq 1 $(( $4 * 10 ))); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$3 did not open $1:$2 in $4 s" >&2; return 1
}

if [ "${EXTERNAL_TEMPORAL:-0}" != 1 ]; then
  # The UI publishes its codec endpoint to anyone who opens it: no secret in it. Ops sign in at
  # $API/codec/login and tick "Include cross-origin credentials" in the UI's codec settings.
  # shellcheck disable=SC2046
  .tools/bin/temporal server start-dev \
    --ip "$TEMPORAL_HOST" --port "$TEMPORAL_PORT" --ui-port "$UI_PORT" \
    --db-filename "$DATA_DIR/temporal.db" --namespace "${TEMPORAL_NAMESPACE:-default}" \
    --ui-codec-endpoint "http://$API_HOST:$API_PORT/codec" \
    --dynamic-config-value 'matching.longPollExpirationInterval="10s"' \
    --log-level warn $($J search-attributes) > "$DATA_DIR/temporal.log" 2>&1 &
  pids+=($!)
  wait_port "$TEMPORAL_HOST" "$TEMPORAL_PORT" "Temporal" 60
  $J register-search-attributes >/dev/null
fi
$J schedules >/dev/null   # the monthly spending report (idempotent)

$J worker &
pids+=($!)
$J api &
pids+=($!)
wait_port "$API_HOST" "$API_PORT" "API" 60

cat <<MSG

  patient-journeys is running (Ctrl-C stops everything)
    API               http://$API_HOST:$API_PORT
    API docs          http://$API_HOST:$API_PORT/docs
    Health            http://$API_HOST:$API_PORT/health
    Temporal UI       http://$TEMPORAL_HOST:$UI_PORT  (payloads: sign in at http://$API_HOST:$API_PORT/codec/login)
    Temporal gRPC     $TEMPORAL_ADDRESS
    Admin login       admin / password in $DATA_DIR/admin-password
    Logs              Temporal: $DATA_DIR/temporal.log; worker and API below

MSG
wait -n "${pids[@]}"
echo "==> a process exited; stopping the rest" >&2
