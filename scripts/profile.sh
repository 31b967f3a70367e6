#!/usr/bin/env bash
# The local servers behind each component profile (components/<profile>/).
#   scripts/profile.sh install PROFILE...    install what the profiles need (idempotent)
#   scripts/profile.sh up PROFILE DIR        start its servers on loopback (reusing any that
#                                            already answer); prints KEY=VALUE lines for daprd
#   scripts/profile.sh down PROFILE DIR      stop only the servers `up` started
# Ports: JOBRELAY_REDIS_PORT (6379), JOBRELAY_POSTGRES_PORT (5432), JOBRELAY_RABBITMQ_PORT
# (5672), JOBRELAY_KAFKA_PORT (9092). Data lives in DIR/<server>, PostgreSQL's in
# JOBRELAY_POSTGRES_DIR if set (as root it must be reachable by the postgres user).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

servers() {
  case "$1" in
    redis) echo redis ;;
    rabbitmq) echo rabbitmq postgres ;;
    kafka) echo kafka redis ;;
    # Azure's services cannot run here: daprd reaches them with the JOBRELAY_AZURE_* settings
    # of the calling shell (see components/azure/).
    azure) ;;
    *)
      echo "profile: unknown profile '$1' (one of: $(cd "$here/../components" && ls -d */ | tr -d / | grep -vx common | xargs))" >&2
      exit 2
      ;;
  esac
}

apt_install() {
  local sudo_=""
  [[ $(id -u) -eq 0 ]] || sudo_="sudo"
  echo "profile: installing $* from Debian's packages" >&2
  $sudo_ apt-get update -qq
  # policy-rc.d or not, the packages' own system-wide services are never what we use:
  # scripts/<server>.sh runs private instances.
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "$@" >/dev/null
}

install_server() {
  case "$1" in
    redis) command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server ;;
    postgres) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql ;;
    rabbitmq) [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || apt_install rabbitmq-server ;;
    kafka) "$here/kafka.sh" install >/dev/null ;;
  esac
}

port_of() {
  case "$1" in
    redis) echo "${JOBRELAY_REDIS_PORT:-6379}" ;;
    postgres) echo "${JOBRELAY_POSTGRES_PORT:-5432}" ;;
    rabbitmq) echo "${JOBRELAY_RABBITMQ_PORT:-5672}" ;;
    kafka) echo "${JOBRELAY_KAFKA_PORT:-9092}" ;;
  esac
}

dir_of() {
  local server=$1 dir=$2
  if [[ $server == postgres ]]; then
    # PostgreSQL will not run as root, and its user cannot enter /root.
    if [[ -n "${JOBRELAY_POSTGRES_DIR:-}" ]]; then
      echo "$JOBRELAY_POSTGRES_DIR"
    elif [[ $(id -u) -eq 0 ]]; then
      echo "/var/lib/postgresql/jobrelay-$(port_of postgres)"
    else
      echo "$dir/postgres"
    fi
  else
    echo "$dir/$server"
  fi
}

# What daprd reads through the components' envRef.
env_of() {
  local port
  port=$(port_of "$1")
  case "$1" in
    redis) echo "JOBRELAY_REDIS_HOST=127.0.0.1:$port" ;;
    postgres) echo "JOBRELAY_POSTGRES_URL=host=127.0.0.1 port=$port user=jobrelay dbname=jobrelay sslmode=disable" ;;
    rabbitmq) echo "JOBRELAY_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:$port/" ;;
    kafka) echo "JOBRELAY_KAFKA_BROKERS=127.0.0.1:$port" ;;
  esac
}

action=$1
shift
case "$action" in
  install)
    for profile in "$@"; do
      for server in $(servers "$profile"); do install_server "$server"; done
    done
    ;;
  up)
    profile=$1 dir=$2
    mkdir -p "$dir"
    for server in $(servers "$profile"); do
      install_server "$server"
      how=$("$here/$server.sh" start "$(port_of "$server")" "$(dir_of "$server" "$dir")")
      # Remember what we started, so `down` never stops a server someone else runs.
      [[ $how == started ]] && touch "$dir/.started-$server"
      echo "profile: $server on 127.0.0.1:$(port_of "$server") ($how)" >&2
      env_of "$server"
    done
    ;;
  down)
    profile=$1 dir=$2
    for server in $(servers "$profile"); do
      if [[ -f "$dir/.started-$server" ]]; then
        "$here/$server.sh" stop "$(port_of "$server")" "$(dir_of "$server" "$dir")"
        rm -f "$dir/.started-$server"
      fi
    done
    ;;
  *)
    echo "usage: $0 install PROFILE... | up|down PROFILE DIR" >&2
    exit 2
    ;;
esac
