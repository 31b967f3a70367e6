#!/usr/bin/env bash
# `make run`: Redis (started only if none answers), then every app with its sidecar through
# `dapr run -f .` in the foreground. Ctrl-C stops the apps and sidecars, and the Redis this
# script started; a Redis that was already running is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/versions.sh

redis_port=${JOBRELAY_REDIS_PORT:-6379}
redis_dir=${JOBRELAY_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/jobrelay}/redis
runtime=$(scripts/dapr-build.sh | tail -n 1)

# daprd inherits this shell's environment (not the run file's env:), so what the component
# files read through envRef is exported here.
export DAPR_RUNTIME_PATH=$runtime
export JOBRELAY_REDIS_HOST=127.0.0.1:$redis_port

redis=$(scripts/redis.sh start "$redis_port" "$redis_dir")
cleanup() {
  [[ "$redis" == started ]] && scripts/redis.sh stop "$redis_port" "$redis_dir"
  return 0
}
trap cleanup EXIT
echo "run: Redis on 127.0.0.1:$redis_port ($redis); intake http://127.0.0.1:8000, status http://127.0.0.1:8001"

"$runtime/.dapr/bin/dapr" run -f . &
cli=$!
# The CLI moves itself into a process group of its own (to stop its children as one), so a
# terminal's Ctrl-C reaches this script but never the CLI: pass it on, then wait until the
# CLI has stopped every app and sidecar before the EXIT trap stops Redis.
trap 'kill -INT "$cli" 2>/dev/null' INT TERM
set +e
while kill -0 "$cli" 2>/dev/null; do
  wait "$cli"
done
