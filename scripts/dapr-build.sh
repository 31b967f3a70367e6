#!/usr/bin/env bash
# Builds daprd and the Dapr CLI from Go modules into a cache outside the clone.
#
# `dapr init` downloads release binaries from the internet, which this project cannot rely on;
# the Go module proxy is reachable, so we compile the pinned release ourselves. The result is
# keyed by version, so a second setup (or a second clone on the same machine) is instant.
#
# Prints the runtime path (the folder that holds .dapr/bin/daprd) on stdout as its last line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"

runtime="$JOBRELAY_CACHE/dapr-$DAPR_RUNTIME_VERSION-cli-$DAPR_CLI_VERSION"
bin="$runtime/.dapr/bin"
if [[ -x "$bin/daprd" && -x "$bin/dapr" ]]; then
  echo "$runtime"
  exit 0
fi

command -v go >/dev/null || { echo "dapr-build: Go is required to build daprd (none on PATH)" >&2; exit 1; }
# No ',direct': a fallback to VCS hosts would hang on this network instead of failing fast.
export GOPROXY="${JOBRELAY_GOPROXY:-https://proxy.golang.org}" GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

work=$(mktemp -d "${TMPDIR:-/tmp}/jobrelay-dapr-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/.dapr/bin"

# go build -v names each package as it is compiled, and go list names each module as it is
# downloaded; counting those lines turns a silent multi-minute build into progress. A terminal
# gets one line that updates in place; a log (CI, `make setup > log`) gets a line per 10 % of
# the packages (per 50 modules downloaded, whose total is not known ahead), never one endless
# line of carriage returns.
tty=0
[[ -t 2 ]] && tty=1
progress() {
  local label=$1 total=${2:-0}
  awk -v label="$label" -v total="$total" -v tty="$tty" '
    function show(text) {
      if (tty) printf "\r  %s: %s", label, text > "/dev/stderr"
      else printf "  %s: %s\n", label, text > "/dev/stderr"
      shown = 1
    }
    /^go: downloading / {
      d++
      if (tty || d % 50 == 0) show(sprintf("downloaded %d modules", d))
      next
    }
    total > 0 {
      n++
      pct = int(n * 100 / total)
      if (tty ? n % 10 == 0 : pct >= step + 10) {
        step = pct - pct % 10
        show(sprintf("%d/%d packages (%d%%)", n, total, pct))
      }
      next
    }
    { print > "/dev/stderr" }
    END {
      if (total > 0) {
        if (tty) printf "\r  %s: done, %d packages compiled%20s\n", label, n, "" > "/dev/stderr"
        else printf "  %s: done, %d packages compiled\n", label, n > "/dev/stderr"
      } else if (d > 0) {
        if (tty) printf "\n" > "/dev/stderr"
        else printf "  %s: downloaded %d modules\n", label, d > "/dev/stderr"
      }
    }'
}

# `go install pkg@version` refuses modules with replace directives (dapr) and asks the proxy for a
# version list it may not serve (cli), so each module is built inside a writable copy of itself,
# where its own go.mod and go.sum (replaces included) apply unchanged.
module_copy() {
  local module=$1 version=$2 dir
  dir=$(go mod download -json "$module@v$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -n "$dir" ]] || { echo "dapr-build: could not download $module@v$version" >&2; exit 1; }
  cp -r "$dir" "$work/src-${module##*/}"
  chmod -R u+w "$work/src-${module##*/}"
  echo "$work/src-${module##*/}"
}

build_daprd() {
  echo "dapr-build: downloading github.com/dapr/dapr@v$DAPR_RUNTIME_VERSION" >&2
  cd "$(module_copy github.com/dapr/dapr "$DAPR_RUNTIME_VERSION")"
  # stablecomponents compiles in the stable set: pub/sub redis, rabbitmq, kafka, Service Bus;
  # state redis, postgresql, Cosmos DB. A tag spelled wrong would build a daprd that refuses to
  # start, so the tag is checked against the module's own registration files first.
  grep -q "stablecomponents" cmd/daprd/components/pubsub_redis.go \
    || { echo "dapr-build: tag stablecomponents not found in this dapr version" >&2; exit 1; }
  # Only the packages daprd imports are fetched (not `go mod download` of the whole graph, which
  # also wants modules of tests and tools that the proxy may not serve).
  echo "dapr-build: resolving dependencies (the first time downloads several hundred MB)" >&2
  local total
  total=$(go list -deps -tags stablecomponents ./cmd/daprd 2> >(progress daprd) | wc -l)
  echo "dapr-build: compiling daprd v$DAPR_RUNTIME_VERSION" >&2
  go build -v -tags stablecomponents \
    -ldflags "-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=$DAPR_RUNTIME_VERSION" \
    -o "$work/.dapr/bin/daprd" ./cmd/daprd 2>&1 >/dev/null | progress daprd "$total"
  test -x "$work/.dapr/bin/daprd"
}

build_cli() {
  echo "dapr-build: downloading github.com/dapr/cli@v$DAPR_CLI_VERSION" >&2
  cd "$(module_copy github.com/dapr/cli "$DAPR_CLI_VERSION")"
  local total
  total=$(go list -deps . 2> >(progress dapr) | wc -l)
  echo "dapr-build: compiling the Dapr CLI v$DAPR_CLI_VERSION" >&2
  go build -v -ldflags "-s -w -X main.version=$DAPR_CLI_VERSION -X main.runtimeVersion=$DAPR_RUNTIME_VERSION" \
    -o "$work/.dapr/bin/dapr" . 2>&1 >/dev/null | progress dapr "$total"
  test -x "$work/.dapr/bin/dapr"
}

start=$SECONDS
build_daprd
build_cli
mkdir -p "$JOBRELAY_CACHE"
rm -rf "$runtime.tmp"
mkdir -p "$runtime.tmp"
mv "$work/.dapr" "$runtime.tmp/.dapr"
# Rename last: a half-finished build never looks like a cached one.
mv "$runtime.tmp" "$runtime"
echo "dapr-build: built in $((SECONDS - start)) s -> $bin" >&2
echo "$runtime"
