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

build_kubernetes() {
  local name="kubernetes-$KUBERNETES_VERSION" out minor
  cached "$name" && return 0
  echo "k8s-build: Kubernetes v$KUBERNETES_VERSION (the first build takes the better part of an hour on one core)" >&2
  out="$work/$name"
  mkdir -p "$out/bin"
  cd "$(module_copy k8s.io/kubernetes "v$KUBERNETES_VERSION")"
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
  echo "k8s-build: etcd v$ETCD_VERSION" >&2
  out="$work/$name"
  mkdir -p "$out/bin"
  cd "$(module_copy go.etcd.io/etcd/server/v3 "v$ETCD_VERSION")"
  # The server module points at its siblings (api, client, pkg) by relative path.
  unreplace_local "v$ETCD_VERSION"
  go_build etcd "$out/bin/etcd" .
  finish "$name" "$out"
}

build_coredns() {
  local name="coredns-$COREDNS_VERSION" out
  cached "$name" && return 0
  echo "k8s-build: CoreDNS v$COREDNS_VERSION" >&2
  out="$work/$name"
  mkdir -p "$out/bin"
  cd "$(module_copy github.com/coredns/coredns "v$COREDNS_VERSION")"
  go_build coredns "$out/bin/coredns" .
  finish "$name" "$out"
}

build_helm() {
  local name="helm-$HELM_VERSION" out
  cached "$name" && return 0
  echo "k8s-build: helm v$HELM_VERSION (only to render Dapr's chart, offline)" >&2
  out="$work/$name"
  mkdir -p "$out/bin"
  cd "$(module_copy helm.sh/helm/v3 "v$HELM_VERSION")"
  go_build helm "$out/bin/helm" ./cmd/helm
  finish "$name" "$out"
}

build_dapr_control_plane() {
  local name="dapr-control-plane-$DAPR_RUNTIME_VERSION" out
  cached "$name" && return 0
  echo "k8s-build: the Dapr control plane v$DAPR_RUNTIME_VERSION" >&2
  out="$work/$name"
  mkdir -p "$out/bin"
  cd "$(module_copy github.com/dapr/dapr "v$DAPR_RUNTIME_VERSION")"
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
  echo "k8s-build: KEDA v$KEDA_VERSION" >&2
  out="$work/$name"
  mkdir -p "$out/bin"
  cd "$(module_copy github.com/kedacore/keda/v2 "v$KEDA_VERSION")"
  LDFLAGS="-X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION" \
    go_build keda "$out/bin/" ./cmd/operator ./cmd/adapter ./cmd/webhooks
  finish "$name" "$out"
}

build_kube_router() {
  local name="kube-router-$KUBE_ROUTER_VERSION" out
  cached "$name" && return 0
  echo "k8s-build: kube-router v$KUBE_ROUTER_VERSION (NetworkPolicy controller)" >&2
  out="$work/$name"
  mkdir -p "$out/bin"
  cd "$(module_copy github.com/cloudnativelabs/kube-router/v2 "v$KUBE_ROUTER_VERSION")"
  go_build kube-router "$out/bin/kube-router" ./cmd/kube-router
  finish "$name" "$out"
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
