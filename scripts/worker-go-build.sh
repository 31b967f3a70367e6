#!/usr/bin/env bash
# Builds the Go worker (apps/worker-go) into a cache outside the clone, like daprd.
#
# The binary is keyed by a hash of the worker's sources (go.mod, go.sum and every .go file),
# so an unchanged tree never rebuilds, and a second clone on the same machine reuses it.
# Modules come through the Go module proxy only (go.sum pins them).
#
# Prints the binary's path on stdout as its last line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"

src=$root/apps/worker-go
hash=$(cd "$src" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort \
  | xargs sha256sum | sha256sum | cut -c1-16)
out="$JOBRELAY_CACHE/worker-go-$hash/worker-go"
if [[ -x "$out" ]]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "worker-go-build: Go is required (none on PATH)" >&2; exit 1; }
# No ',direct': a fallback to VCS hosts would hang on this network instead of failing fast.
export GOPROXY="${JOBRELAY_GOPROXY:-https://proxy.golang.org}" GOTOOLCHAIN=local CGO_ENABLED=0
# -p 2: the machines this builds on have two cores shared with the rest of the stack.
export GOFLAGS="-mod=readonly -buildvcs=false -p=2"

start=$SECONDS
echo "worker-go-build: compiling apps/worker-go ($hash)" >&2
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$(dirname "$out")/.worker-go.XXXXXX")
trap 'rm -f "$tmp"' EXIT
(cd "$src" && go build -trimpath -ldflags "-s -w" -o "$tmp" .)
# Rename last: a half-finished build never looks like a cached one.
mv "$tmp" "$out"
echo "worker-go-build: built in $((SECONDS - start)) s -> $out" >&2
echo "$out"
