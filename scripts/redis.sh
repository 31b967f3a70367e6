#!/usr/bin/env bash
# Starts Redis on loopback if nothing answers on the port yet; stops only what it started.
#   scripts/redis.sh start PORT DIR   -> prints "started" or "reused"
#   scripts/redis.sh stop PORT DIR    -> stops the Redis that `start` started in DIR
set -euo pipefail
action=$1 port=$2 dir=$3

case "$action" in
  start)
    if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
      echo reused
      exit 0
    fi
    mkdir -p "$dir"
    # AOF with an fsync every second: a Redis restart keeps every accepted job but the last
    # second's. Loopback only, and no RDB snapshots on top of the AOF.
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
      --appendonly yes --appendfsync everysec --save "" >/dev/null
    for _ in $(seq 50); do
      redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && { echo started; exit 0; }
      sleep 0.1
    done
    echo "redis: did not answer on 127.0.0.1:$port; see $dir/redis.log" >&2
    exit 1
    ;;
  stop)
    # Only a Redis whose pidfile is in DIR is ours to stop.
    [[ -f "$dir/redis.pid" ]] || exit 0
    redis-cli -h 127.0.0.1 -p "$port" shutdown >/dev/null 2>&1 || kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    rm -f "$dir/redis.pid"
    ;;
  *)
    echo "usage: $0 start|stop PORT DIR" >&2
    exit 2
    ;;
esac
