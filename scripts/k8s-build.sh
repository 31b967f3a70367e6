#!/usr/bin/env bash
# Builds every binary the local Kubernetes cluster (`make k8s-up`) runs, from Go modules through
# the module proxy, into caches outside the clone keyed by version (like daprd in dapr-build.sh):
#   - Kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
#     kubectl;
#   - etcd, at the version Kubernetes pins;
#   - CoreDNS (cluster DNS: the Dapr components name Redis by its Service's DNS name);
#   - the Dapr control plane (operator, injector, sentry, placement, scheduler), from the same
#     dapr module as daprd, and helm, to render Dapr's own chart from that module;
#   - KEDA (operator, metrics adapter, admission webhooks);
#   - kube-router, only as NetworkPolicy controller (iptables + ipset).
# containerd, runc and the CNI plugins come from Debian (scripts/k8s-cluster.sh installs them).
#
# Prints KEY=dir lines for the caller on stdout; everything else goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"
# shellcheck source=scripts/k8s/gomod.sh
source "$here/k8s/gomod.sh"

command -v go >/dev/null || { echo "k8s-build: Go is required (none on PATH)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/jobrelay-k8s-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

# cached NAME: true when $JOBRELAY_CACHE/NAME is complete (renamed into place last, so a
# half-finished build never looks cached).
cached() { [[ -f "$JOBRELAY_CACHE/$1/.complete" ]]; }
finish() {
  local name=$1 staged=$2
  touch "$staged/.complete"
  rm -rf "${JOBRELAY_CACHE:?}/$name"
  mkdir -p "$JOBRELAY_CACHE"
  mv "$staged" "$JOBRELAY_CACHE/$name"
}

# enter NAME MODULE VERSION WHAT: announce the build of NAME, make its staging directory $out
# (the caller's local) and change into a copy of MODULE at VERSION.
enter() {
  local name=$1 module=$2 version=$3 what=$4 dir
  echo "k8s-build: $what" >&2
  out="$work/$name"
  mkdir -p "$out/bin"
  dir=$(module_copy "$module" "$version")
  cd "$dir"
}

build_kubernetes() {
  local name="kubernetes-$KUBERNETES_VERSION" out minor
  cached "$name" && return 0
  enter "$name" k8s.io/kubernetes "v$KUBERNETES_VERSION" "Kubernetes v$KUBERNETES_VERSION (the first build takes the better part of an hour on one core)"
  # The staging modules are published as v0.<minor>.<patch> of the same release.
  minor=${KUBERNETES_VERSION#*.}
  unreplace_local "v0.$minor"
  # What `kubectl version` and the API's /version report; without it they say v0.0.0 and
  # clients that check the server's version (KEDA, Dapr's operator) misjudge it.
  local v=k8s.io/component-base/version
  LDFLAGS="-X $v.gitVersion=v$KUBERNETES_VERSION -X $v.gitMajor=${KUBERNETES_VERSION%%.*}"
  LDFLAGS+=" -X $v.gitMinor=${minor%%.*} -X $v.gitTreeState=clean"
  LDFLAGS+=" -X k8s.io/client-go/pkg/version.gitVersion=v$KUBERNETES_VERSION"
  export LDFLAGS
  local cmd
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    go_build "$cmd" "$out/bin/$cmd" "./cmd/$cmd"
  done
  unset LDFLAGS
  finish "$name" "$out"
}

build_etcd() {
  local name="etcd-$ETCD_VERSION" out
  cached "$name" && return 0
  enter "$name" go.etcd.io/etcd/server/v3 "v$ETCD_VERSION" "etcd v$ETCD_VERSION"
  # The server module points at its siblings (api, client, pkg) by relative path.
  unreplace_local "v$ETCD_VERSION"
  go_build etcd "$out/bin/etcd" .
  finish "$name" "$out"
}

build_dapr_control_plane() {
  local name="dapr-control-plane-$DAPR_RUNTIME_VERSION" out
  cached "$name" && return 0
  enter "$name" github.com/dapr/dapr "v$DAPR_RUNTIME_VERSION" "the Dapr control plane v$DAPR_RUNTIME_VERSION"
  # The same module, flags and tags as daprd (dapr-build.sh), so the two share the build cache
  # and the sidecar matches its control plane exactly.
  export LDFLAGS="-X github.com/dapr/dapr/pkg/buildinfo.version=$DAPR_RUNTIME_VERSION"
  go_build dapr-control-plane "$out/bin/" -tags stablecomponents \
    ./cmd/operator ./cmd/injector ./cmd/sentry ./cmd/placement
  # The scheduler alone imports github.com/diagridio/go-etcd-cron, pinned at v0.12.5, whose
  # source the proxy refuses (403 "This module version is not available"; so are v0.12.4 and
  # v0.13.0). v0.12.6, the next patch release, is served: the scheduler is built with it, the
  # one change to the dapr module's dependencies anywhere in this project.
  go mod edit -replace "github.com/diagridio/go-etcd-cron=github.com/diagridio/go-etcd-cron@$DAPR_SCHEDULER_CRON_VERSION"
  go_build dapr-scheduler "$out/bin/scheduler" -tags stablecomponents ./cmd/scheduler
  unset LDFLAGS
  finish "$name" "$out"
}

build_keda() {
  local name="keda-$KEDA_VERSION" out
  cached "$name" && return 0
  enter "$name" github.com/kedacore/keda/v2 "v$KEDA_VERSION" "KEDA v$KEDA_VERSION"
  LDFLAGS="-X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION" \
    go_build keda "$out/bin/" ./cmd/operator ./cmd/adapter ./cmd/webhooks
  finish "$name" "$out"
}

# single NAME MODULE VERSION WHAT BINARY PACKAGE: the build of a one-binary module.
single() {
  local name=$1 out
  cached "$name" && return 0
  enter "$name" "$2" "$3" "$4"
  go_build "$5" "$out/bin/$5" "$6"
  finish "$name" "$out"
}

build_coredns() {
  single "coredns-$COREDNS_VERSION" github.com/coredns/coredns "v$COREDNS_VERSION" \
    "CoreDNS v$COREDNS_VERSION" coredns .
}

build_helm() {
  single "helm-$HELM_VERSION" helm.sh/helm/v3 "v$HELM_VERSION" \
    "helm v$HELM_VERSION (only to render Dapr's chart, offline)" helm ./cmd/helm
}

build_kube_router() {
  single "kube-router-$KUBE_ROUTER_VERSION" github.com/cloudnativelabs/kube-router/v2 \
    "v$KUBE_ROUTER_VERSION" "kube-router v$KUBE_ROUTER_VERSION (NetworkPolicy controller)" \
    kube-router ./cmd/kube-router
}

# --cached: only say (by the exit status) whether every binary is already built; build
# nothing. CI asks, since a first build does not fit its time (docs/kubernetes.md).
if [[ "${1:-}" == --cached ]]; then
  for name in "kubernetes-$KUBERNETES_VERSION" "etcd-$ETCD_VERSION" "coredns-$COREDNS_VERSION" \
    "dapr-control-plane-$DAPR_RUNTIME_VERSION" "helm-$HELM_VERSION" "keda-$KEDA_VERSION" \
    "kube-router-$KUBE_ROUTER_VERSION"; do
    cached "$name" || { echo "k8s-build: $name is not built yet" >&2; exit 1; }
  done
  exit 0
fi

start=$SECONDS
# One at a time and in this order: what the cluster cannot start without comes first, so a
# failure late in the list still leaves a usable cache of the rest.
for step in ${JOBRELAY_K8S_BUILD:-kubernetes etcd coredns dapr_control_plane helm keda kube_router}; do
  "build_$step"
done
echo "k8s-build: done in $((SECONDS - start)) s" >&2
echo "KUBERNETES=$JOBRELAY_CACHE/kubernetes-$KUBERNETES_VERSION/bin"
echo "ETCD=$JOBRELAY_CACHE/etcd-$ETCD_VERSION/bin"
echo "COREDNS=$JOBRELAY_CACHE/coredns-$COREDNS_VERSION/bin"
echo "DAPR_CONTROL_PLANE=$JOBRELAY_CACHE/dapr-control-plane-$DAPR_RUNTIME_VERSION/bin"
echo "HELM=$JOBRELAY_CACHE/helm-$HELM_VERSION/bin"
echo "KEDA=$JOBRELAY_CACHE/keda-$KEDA_VERSION/bin"
echo "KUBE_ROUTER=$JOBRELAY_CACHE/kube-router-$KUBE_ROUTER_VERSION/bin"
