#!/usr/bin/env bash
# A PostgreSQL cluster of our own on loopback, from Debian's postgresql package.
#   scripts/postgres.sh start PORT DIR  -> prints "started" or "reused"
#   scripts/postgres.sh stop PORT DIR   -> stops the server that `start` started in DIR
# The database is `jobrelay`, user `jobrelay`, trust auth on 127.0.0.1 only:
#   host=127.0.0.1 port=PORT user=jobrelay dbname=jobrelay
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user, and
# DIR must be a path that user can reach (not under /root: scripts/run.sh and the tests pick
# one that is).
set -euo pipefail
action=$1 port=$2 dir=$3

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
ready() { "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; }

case "$action" in
  start)
    [[ -n "$bindir" ]] || { echo "postgres: postgresql is not installed (make setup PROFILE=rabbitmq)" >&2; exit 1; }
    if ready; then
      echo reused
      exit 0
    fi
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    as_owner test -w "$dir" || { echo "postgres: $dir is not writable by the server's user" >&2; exit 1; }
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      as_owner "$bindir/initdb" -D "$dir/data" -U jobrelay --auth=trust -E UTF8 >"$dir/initdb.log"
    fi
    # Loopback only, the socket in DIR (not /var/run/postgresql, which may belong to a system
    # cluster), fsync kept on: job records are the source of truth.
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" >/dev/null
    as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U jobrelay -d postgres -qtAc \
      "SELECT 1 FROM pg_database WHERE datname = 'jobrelay'" | grep -q 1 \
      || as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U jobrelay jobrelay
    echo started
    ;;
  stop)
    # Only a server whose pidfile is in DIR is ours to stop.
    [[ -f "$dir/data/postmaster.pid" ]] || exit 0
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    ;;
  *)
    echo "usage: $0 start|stop PORT DIR" >&2
    exit 2
    ;;
esac
