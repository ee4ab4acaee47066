#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the data-layer tests, on loopback only.
#   scripts/pg-test.sh start   -> installs Debian's postgresql if missing, starts, prints the URL
#   scripts/pg-test.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
# Where this checkout's cluster lives: .data/pgtest, or, when run as root (the server then runs
# as `postgres`) from a folder `postgres` cannot enter (a 0700 home or mktemp -d), a private
# throwaway folder under /tmp owned by postgres; its path is remembered in .data/pgtest.where.
WHERE=$PWD/.data/pgtest.where

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cluster_dir() {
  if [ -f "$WHERE" ] && [ -d "$(cat "$WHERE")" ]; then cat "$WHERE"; return; fi
  mkdir -p "$PWD/.data"
  if [ "$(id -u)" != 0 ] || runuser -u postgres -- test -x "$PWD/.data"; then
    echo "$PWD/.data/pgtest"
  else
    local d
    d=$(mktemp -d /tmp/journeys-pgtest.XXXXXX)   # 0700, then handed to postgres
    chown postgres:postgres "$d"
    echo "$d" > "$WHERE"
    echo "$d"
  fi
}

case "${1:-start}" in
start)
  if [ -z "$(pgbin)" ]; then
    echo "==> installing PostgreSQL from Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  fi
  BIN=$(pgbin)
  DIR=$(cluster_dir)
  mkdir -p "$DIR"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$DIR"; fi
  if [ ! -f "$DIR/PG_VERSION" ]; then
    as_pg "$BIN/initdb" -D "$DIR" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if ! as_pg "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
    # 55432, or the next free port (another checkout's cluster may hold it).
    PGPORT=${PGTEST_PORT:-55432}
    while (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT") 2>/dev/null; do PGPORT=$((PGPORT + 1)); done
    as_pg "$BIN/pg_ctl" -D "$DIR" -w -l "$DIR/server.log" \
      -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k /tmp -c fsync=off -c max_connections=200" start >/dev/null
  fi
  PGPORT=$(sed -n 4p "$DIR/postmaster.pid")  # the running cluster's own record of its port
  URL="postgresql://journeys@127.0.0.1:$PGPORT/journeys_test"
  as_pg "$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qtAc \
    "SELECT 1 FROM pg_roles WHERE rolname='journeys'" | grep -q 1 \
    || as_pg "$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "CREATE ROLE journeys LOGIN SUPERUSER" >/dev/null
  as_pg "$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname='journeys_test'" | grep -q 1 \
    || as_pg "$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "CREATE DATABASE journeys_test OWNER journeys" >/dev/null
  echo "$URL"
  ;;
stop)
  BIN=$(pgbin)
  if [ -f "$WHERE" ]; then DIR=$(cat "$WHERE"); else DIR=$PWD/.data/pgtest; fi
  [ -n "$BIN" ] && [ -f "$DIR/PG_VERSION" ] && as_pg "$BIN/pg_ctl" -D "$DIR" -m fast stop >/dev/null 2>&1 || true
  if [ -f "$WHERE" ]; then  # the folder outside the checkout is throwaway: remove it
    case "$DIR" in /tmp/journeys-pgtest.*) rm -rf "$DIR" ;; esac
    rm -f "$WHERE"
  fi
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
