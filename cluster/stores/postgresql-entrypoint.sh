#!/bin/bash
# What the official postgres image's entrypoint does, for Debian's PostgreSQL: on the first
# start, an empty PGDATA gets a cluster whose superuser is POSTGRES_USER (postgres) with
# POSTGRES_PASSWORD, and the database POSTGRES_DB (the user's name); TCP logins from any
# address need the password (scram-sha-256), the Unix socket trusts the container's own
# user (pg_isready, psql in the pod). Then postgres runs in the foreground; options alone go
# to it (the chart passes `-c max_connections=...`).
set -euo pipefail

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (the official image refuses to start without it too)}"
    user="${POSTGRES_USER:-postgres}"
    database="${POSTGRES_DB:-$user}"
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256
    printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        # A server on the socket only, for the database, then stopped.
        pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait start
        psql --no-psqlrc --username="$user" --dbname=postgres --set=ON_ERROR_STOP=1 \
            --set=database="$database" <<<'CREATE DATABASE :"database";'
        pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop
    fi
fi
exec "$@"
