#!/usr/bin/env bash
# Fetches what `make k8s-validate` needs, all from the Go module proxy, cached outside the clone:
#   - kustomize, built from its Go module (keyed by version, like daprd in dapr-build.sh);
#   - the Dapr module, whose charts/dapr/crds/ hold the Component, Configuration, Resiliency and
#     Subscription schemas of the runtime we pin (scripts/versions.sh);
#   - the KEDA module, whose config/crd/bases/ hold the ScaledObject and TriggerAuthentication
#     schemas.
# Prints three lines, KEY=path, for the caller to read: KUSTOMIZE, DAPR_CRDS, KEDA_CRDS.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"

# v5.8.3 needs go >= 1.27 (this machine has 1.26); v5.8.2 is the newest the proxy serves that
# builds here.
KUSTOMIZE_VERSION=5.8.2

command -v go >/dev/null || { echo "k8s-tools: Go is required (none on PATH)" >&2; exit 1; }
# No ',direct': a fallback to VCS hosts would hang on this network instead of failing fast.
export GOPROXY="${JOBRELAY_GOPROXY:-https://proxy.golang.org}" GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

module_dir() {
  local dir
  dir=$(go mod download -json "$1@v$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -n "$dir" && -d "$dir" ]] || { echo "k8s-tools: could not download $1@v$2" >&2; exit 1; }
  echo "$dir"
}

kustomize="$JOBRELAY_CACHE/kustomize-$KUSTOMIZE_VERSION/kustomize"
if [[ ! -x "$kustomize" ]]; then
  echo "k8s-tools: building kustomize v$KUSTOMIZE_VERSION from its Go module" >&2
  start=$SECONDS
  tmp="$kustomize.tmp.$$"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  # kustomize's go.mod has no replace directives, so `go install module@version` works here
  # (unlike daprd's); -s -w drops debug info the validator never needs.
  GOBIN="$tmp" go install -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@v$KUSTOMIZE_VERSION"
  # Move last: a half-finished build never looks like a cached one.
  mv "$tmp/kustomize" "$kustomize"
  echo "k8s-tools: kustomize built in $((SECONDS - start)) s -> $kustomize" >&2
fi

dapr_crds="$(module_dir github.com/dapr/dapr "$DAPR_RUNTIME_VERSION")/charts/dapr/crds"
keda_crds="$(module_dir github.com/kedacore/keda/v2 "$KEDA_VERSION")/config/crd/bases"
for dir in "$dapr_crds" "$keda_crds"; do
  [[ -d "$dir" ]] || { echo "k8s-tools: no CRD folder at $dir" >&2; exit 1; }
done

echo "KUSTOMIZE=$kustomize"
echo "DAPR_CRDS=$dapr_crds"
echo "KEDA_CRDS=$keda_crds"
