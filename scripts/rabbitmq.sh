#!/usr/bin/env bash
# A RabbitMQ node of our own on loopback, from Debian's rabbitmq-server package.
#   scripts/rabbitmq.sh start PORT DIR  -> prints "started" or "reused"
#   scripts/rabbitmq.sh stop PORT DIR   -> stops the node (and its epmd) that `start` started in DIR
# Optional: RABBITMQ_DIST_PORT, RABBITMQ_EPMD_PORT, RABBITMQ_CTL_PORT (the node's Erlang
# distribution, its epmd, and the rabbitmqctl client's own distribution port; default
# PORT+20000, +20001, +20002).
#
# Everything the node writes (Mnesia, logs, its Erlang cookie) lives in DIR; the package's
# system-wide node (/var/lib/rabbitmq, port 5672, epmd on 4369) is never touched, so this runs
# beside it. The node has its own epmd on a private port for the same reason.
set -euo pipefail
action=$1 port=$2 dir=$3
dist_port=${RABBITMQ_DIST_PORT:-$((port + 20000))}
epmd_port=${RABBITMQ_EPMD_PORT:-$((port + 20001))}
ctl_port=${RABBITMQ_CTL_PORT:-$((port + 20002))}
bin=/usr/lib/rabbitmq/bin

# Every rabbitmq* command (server and CLI) must agree on these to find the node.
export HOME=$dir ERL_EPMD_PORT=$epmd_port ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_NODENAME=jobrelay-$port@localhost RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
# rabbitmqctl is an Erlang node too; left alone it listens on 35672-35682 (the default
# distribution port + 10000), which can be the very port we just gave the broker.
export RABBITMQ_CTL_DIST_PORT_MIN=$ctl_port RABBITMQ_CTL_DIST_PORT_MAX=$ctl_port
node=$RABBITMQ_NODENAME

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

case "$action" in
  start)
    if listening; then
      echo reused
      exit 0
    fi
    [[ -x $bin/rabbitmq-server ]] || { echo "rabbitmq: rabbitmq-server is not installed (make setup PROFILE=rabbitmq)" >&2; exit 1; }
    mkdir -p "$dir/log"
    : >"$dir/rabbitmq-env.conf"
    # No plugins: the management UI would open another port, and the tests need none.
    echo "[]." >"$dir/enabled_plugins"
    # consumer_timeout: how long the broker lets a delivery stay unacknowledged before it
    # closes the consumer's channel. A job holds its delivery for the whole model call plus
    # Dapr's retries (~25 s), so the limit sits far above the longest job (the worker's model
    # timeout is 60 s, the claim lease 240 s), while a truly hung consumer is still cut off.
    cat >"$dir/rabbitmq.conf" <<EOF
consumer_timeout = 1800000
log.file.level = warning
EOF
    RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins \
      RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log RABBITMQ_PID_FILE=$dir/rabbitmq.pid \
      RABBITMQ_DIST_PORT=$dist_port RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$port \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
      setsid "$bin/rabbitmq-server" >"$dir/log/console.log" 2>&1 </dev/null &
    server=$!
    echo "$epmd_port" >"$dir/epmd.port"
    # await_startup returns once the node runs its apps; the loop covers the seconds before
    # the node has even registered with epmd, when await_startup fails at once.
    for _ in $(seq 60); do
      if "$bin/rabbitmqctl" -n "$node" -q await_startup --timeout 5 >/dev/null 2>&1 && listening; then
        echo started
        exit 0
      fi
      kill -0 "$server" 2>/dev/null || break
      sleep 1
    done
    echo "rabbitmq: did not start on 127.0.0.1:$port; see $dir/log/" >&2
    exit 1
    ;;
  stop)
    # Only a node whose pidfile is in DIR is ours to stop.
    [[ -f "$dir/rabbitmq.pid" ]] || exit 0
    "$bin/rabbitmqctl" -n "$node" -q stop >/dev/null 2>&1 || kill "$(cat "$dir/rabbitmq.pid")" 2>/dev/null || true
    # The epmd on the node's private port was started by the node: stop it too (it refuses
    # while another node is still registered with it, which is what we want).
    [[ -f "$dir/epmd.port" ]] && epmd -port "$(cat "$dir/epmd.port")" -kill >/dev/null 2>&1 || true
    rm -f "$dir/rabbitmq.pid" "$dir/epmd.port"
    ;;
  *)
    echo "usage: $0 start|stop PORT DIR" >&2
    exit 2
    ;;
esac
