#!/usr/bin/env bash
# Start / stop the services the storage tests run against: a real PostgreSQL server and an
# S3-compatible server (moto), both on loopback, both in a state directory of their own.
#
#   scripts/ci_services.sh start STATE_DIR   # prints nothing on success; writes STATE_DIR/env
#   source STATE_DIR/env                     # exports GENREG_TEST_POSTGRES_URL, GENREG_TEST_S3_ENDPOINT
#   scripts/ci_services.sh stop STATE_DIR    # stops what start started (safe to call twice)
#
# PostgreSQL comes from Debian's `postgresql` package (installed with apt-get when initdb is
# missing). It refuses to run as root, so as root the cluster is owned by and run as the
# `postgres` user (created if missing). moto_server comes from the venv's `moto[server]`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMD="${1:?usage: ci_services.sh start|stop STATE_DIR}"
STATE="${2:?usage: ci_services.sh start|stop STATE_DIR}"
VENV="${GENREG_VENV:-$ROOT/.venv}"

free_port() {
    "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_bindir() {
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return
    fi
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
    if [ -z "$d" ]; then
        echo "ci_services: installing PostgreSQL (apt-get install postgresql)..." >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq postgresql >&2
        d="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
    fi
    echo "$d"
}

as_pg() {  # run a command as the cluster owner
    if [ "$(id -u)" = "0" ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    mkdir -p "$STATE"
    local bin pgport s3port
    bin="$(pg_bindir)"
    if [ "$(id -u)" = "0" ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$STATE"
        chmod 755 "$STATE"
    fi
    pgport="$(free_port)"
    as_pg "$bin/initdb" -D "$STATE/pg" -U postgres --auth=trust -E UTF8 --no-sync >"$STATE/initdb.log" 2>&1 \
        || { cat "$STATE/initdb.log" >&2; exit 1; }
    as_pg "$bin/pg_ctl" -D "$STATE/pg" -l "$STATE/pg.log" -w -t 60 \
        -o "-p $pgport -k $STATE -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" \
        start >/dev/null || { cat "$STATE/pg.log" >&2; exit 1; }
    echo "$bin" >"$STATE/pg_bindir"

    s3port="$(free_port)"
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$s3port" >"$STATE/moto.log" 2>&1 &
    echo $! >"$STATE/moto.pid"
    for _ in $(seq 1 100); do
        if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$s3port/')" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done

    cat >"$STATE/env" <<EOF
export GENREG_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$pgport/postgres"
export GENREG_TEST_S3_ENDPOINT="http://127.0.0.1:$s3port"
EOF
    echo "ci_services: PostgreSQL on 127.0.0.1:$pgport, moto S3 on 127.0.0.1:$s3port" >&2
}

stop() {
    if [ -f "$STATE/moto.pid" ]; then
        kill "$(cat "$STATE/moto.pid")" 2>/dev/null || true
        rm -f "$STATE/moto.pid"
    fi
    if [ -f "$STATE/pg_bindir" ] && [ -f "$STATE/pg/postmaster.pid" ]; then
        as_pg "$(cat "$STATE/pg_bindir")/pg_ctl" -D "$STATE/pg" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

case "$CMD" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: ci_services.sh start|stop STATE_DIR" >&2; exit 2 ;;
esac
