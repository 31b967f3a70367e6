#!/usr/bin/env bash
# A single-node Apache Kafka broker in KRaft mode (no ZooKeeper), on loopback, run from the
# official jars on Maven Central with the machine's JDK.
#   scripts/kafka.sh install            -> prints the folder of jars (cached, instant the 2nd time)
#   scripts/kafka.sh start PORT DIR     -> prints "started" or "reused"
#   scripts/kafka.sh stop PORT DIR      -> stops the broker that `start` started in DIR
# Optional: KAFKA_CONTROLLER_PORT (the KRaft controller listener; default PORT+1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"
action=$1

libs=$JOBRELAY_CACHE/kafka-$KAFKA_VERSION/libs

install() {
  [[ -f "$libs/.complete" ]] && { echo "$libs"; return; }
  command -v java >/dev/null || { echo "kafka: a JDK (17+) is required" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "kafka: Maven is required to fetch Kafka's jars" >&2; exit 1; }
  local work start=$SECONDS
  work=$(mktemp -d "${TMPDIR:-/tmp}/jobrelay-kafka.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  # The broker (kafka_2.13 pulls in the raft, metadata, storage and coordinator modules) and
  # the log4j binding its scripts would put on the classpath.
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.jobrelay</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
EOF
  echo "kafka: fetching Apache Kafka $KAFKA_VERSION from Maven Central" >&2
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn -q -B -Dstyle.color=never -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$libs" >&2
  touch "$libs/.complete"
  echo "kafka: $(ls "$libs" | wc -l) jars in $((SECONDS - start)) s -> $libs" >&2
  echo "$libs"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  local port=$1 dir=$2 controller=${KAFKA_CONTROLLER_PORT:-$(($1 + 1))}
  if listening "$port"; then
    echo reused
    return
  fi
  install >/dev/null
  mkdir -p "$dir"
  # One process is both broker and KRaft controller. Replication factors of 1: there is one
  # node. num.partitions bounds how many jobs run at once: Dapr hands a partition's messages
  # to the app one at a time (a retried job holds its partition), so a topic needs at least
  # as many partitions as jobs meant to run in parallel. No delay before the first consumer
  # group rebalance: a worker starting up should get its partitions at once.
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=8
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/kafka.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
  # A small heap: the broker holds a handful of tiny topics, and the machine has 2 cores.
  local java=(java -Xms256m -Xmx512m -XX:+UseG1GC -Dlog4j.configuration="file:$dir/log4j.properties"
    -cp "$libs/*")
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    "${java[@]}" kafka.tools.StorageTool format --cluster-id="$(uuidgen_kafka)" -c "$dir/server.properties" \
      >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; exit 1; }
  fi
  setsid "${java[@]}" kafka.Kafka "$dir/server.properties" >"$dir/console.log" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
  for _ in $(seq 120); do
    listening "$port" && { echo started; return; }
    kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null || break
    sleep 0.5
  done
  echo "kafka: did not start on 127.0.0.1:$port; see $dir/console.log and $dir/kafka.log" >&2
  exit 1
}

# A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what kafka-storage
# random-uuid prints). Passed as `--cluster-id=ID`: one id in 64 starts with `-`, which as a
# separate argument the tool's parser takes for an option.
uuidgen_kafka() {
  head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='
}

stop() {
  local dir=$2 pid
  # Only a broker whose pidfile is in DIR is ours to stop.
  [[ -f "$dir/kafka.pid" ]] || return 0
  pid=$(cat "$dir/kafka.pid")
  kill "$pid" 2>/dev/null || true
  # A clean shutdown lets the next start skip log recovery; give it a few seconds.
  for _ in $(seq 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/kafka.pid"
}

case "$action" in
  install) install ;;
  start) start "$2" "$3" ;;
  stop) stop "$2" "$3" ;;
  *)
    echo "usage: $0 install | start|stop PORT DIR" >&2
    exit 2
    ;;
esac
