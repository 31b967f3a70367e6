#!/usr/bin/env bash
# `make traces`: a real trace viewer on http://127.0.0.1:9411 (Zipkin, its server jar from Maven
# Central, cached outside the clone like daprd), in the foreground; Ctrl-C stops it.
#
# Then run the stack with its spans sent there (docs/operations.md, "Traces"):
#   OTEL_TRACES_EXPORTER=zipkin make run
# The apps export to OTEL_EXPORTER_ZIPKIN_ENDPOINT (default http://localhost:9411/api/v2/spans).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"

version=${ZIPKIN_VERSION:-3.6.1}
jar="$JOBRELAY_CACHE/zipkin-$version/zipkin-server-$version-exec.jar"
if [[ ! -f "$jar" ]]; then
  command -v mvn >/dev/null || { echo "trace-viewer: Maven is required to fetch Zipkin" >&2; exit 1; }
  command -v java >/dev/null || { echo "trace-viewer: a Java 17+ runtime is required" >&2; exit 1; }
  echo "trace-viewer: fetching io.zipkin:zipkin-server:$version (exec jar) from Maven Central" >&2
  mvn -q -B -Dstyle.color=never dependency:copy \
    -Dartifact="io.zipkin:zipkin-server:$version:jar:exec" \
    -DoutputDirectory="$JOBRELAY_CACHE/zipkin-$version.tmp" >&2
  mv "$JOBRELAY_CACHE/zipkin-$version.tmp" "$JOBRELAY_CACHE/zipkin-$version"
fi
echo "trace-viewer: Zipkin on http://127.0.0.1:${QUERY_PORT:-9411}" >&2
exec java -jar "$jar"
