#!/usr/bin/env bash
# A single-machine Kubernetes cluster from the project's own builds: `up`, `down`, `kubectl`,
# `exec` (a command inside the cluster's network), `status`.
#
# Layout, and why:
#   - Everything runs in one network namespace, $NETNS, with no link to the outside: the node
#     address sits on its loopback, pods hang off it by point-to-point veths (the CNI `ptp`
#     plugin; this kernel has no br_netfilter, so a bridge would let Service replies bypass
#     kube-proxy's NAT), and kube-proxy's and kube-router's iptables rules live there too. The
#     cluster's private addresses can never reach a real network, nothing of the host's network
#     configuration is touched, and deleting the namespace takes all of it away.
#   - The daemons enter only that network namespace (nsenter --net), not a mount namespace of
#     their own: the kubelet mounts volumes that containerd must see.
#   - etcd, the control plane, containerd, the kubelet, kube-proxy and kube-router run as plain
#     processes under nice; CoreDNS, Dapr and KEDA run as pods.
#   - This machine has cgroup v1 (a hybrid hierarchy the sandbox owns), so the kubelet runs with
#     failCgroupV1: false and the cgroupfs driver.
#   - Images come from scripts/k8s-images.sh and are imported into containerd; nothing is pulled.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"

NETNS=jobrelay-k8s
NODE=jobrelay-node
# Addresses inside $NETNS only (see above).
NODE_IP=10.201.0.1
POD_CIDR=10.202.0.0/16
SERVICE_CIDR=10.203.0.0/16
API_SERVICE_IP=10.203.0.1
DNS_SERVICE_IP=10.203.0.10
STATE=${JOBRELAY_K8S_STATE:-/var/lib/jobrelay-k8s}
RUN=/run/jobrelay-k8s
# containerd's images survive `down` (importing them again is the slow part of `up`); the rest
# of $STATE is the cluster and is wiped.
CONTAINERD_ROOT="$STATE/containerd"
CLUSTER="$STATE/cluster"
PKI="$CLUSTER/pki"
LOGS="$CLUSTER/logs"
KUBECONFIG_ADMIN="$CLUSTER/admin.kubeconfig"
# Kernel settings the kubelet insists on (it rewrites them at start, machine-wide, and has no
# option to leave them): saved at `up`, put back at `down`.
KERNEL_TUNABLES=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops)

log() { echo "k8s-cluster: $*" >&2; }
die() { log "$*"; exit 1; }
in_netns() { nsenter --net="/run/netns/$NETNS" "$@"; }

load_binaries() {
  eval "$("$here/k8s-build.sh")"
  export PATH="$KUBERNETES:$ETCD:$HELM:$PATH"
}

kustomize_bin() { "$here/k8s-tools.sh" | sed -n 's/^KUSTOMIZE=//p'; }

kubectl_() { in_netns "$KUBERNETES/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# start NAME COMMAND...: a daemon in the cluster's network namespace, niced (the machine is
# shared), its pid in $RUN/NAME.pid and its output in $LOGS/NAME.log.
start() {
  local name=$1
  shift
  setsid nsenter --net="/run/netns/$NETNS" nice -n 15 "$@" > "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
}

wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not come up in $seconds s (logs: $LOGS)"
    sleep 1
  done
}

install_debian_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [[ -x /usr/lib/cni/ptp ]] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v ipset >/dev/null || missing+=(ipset)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v openssl >/dev/null || missing+=(openssl)
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# --- certificates -------------------------------------------------------------------------

# cert NAME CN O [SAN]: a key and a certificate signed by the cluster CA (or by CA=name).
cert() {
  local name=$1 cn=$2 org=$3 san=${4:-} ca=${CA:-ca}
  local subj="/CN=$cn"
  [[ -n "$org" ]] && subj="/O=$org$subj"
  openssl req -new -newkey rsa:2048 -nodes -subj "$subj" \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr" 2>/dev/null
  local ext="$PKI/$name.ext"
  { echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n "$san" ]]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi; } > "$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
    -CAcreateserial -days 30 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

ca() {
  openssl req -x509 -new -newkey rsa:2048 -nodes -days 30 -sha256 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.crt" 2>/dev/null
}

kubeconfig() {
  local name=$1 user=$2
  cat > "$CLUSTER/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    certificate-authority: $PKI/ca.crt
    server: https://$NODE_IP:6443
users:
- name: $user
  user:
    client-certificate: $PKI/$user.crt
    client-key: $PKI/$user.key
contexts:
- name: local
  context: {cluster: local, user: $user}
current-context: local
EOF
}

make_pki() {
  mkdir -p "$PKI"
  ca ca jobrelay-local-ca
  # The aggregation layer (KEDA's metrics API) authenticates the API server by a second CA.
  ca front-proxy-ca jobrelay-local-front-proxy-ca
  cert apiserver kube-apiserver "" \
    "IP:$NODE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
  cert admin jobrelay-admin system:masters
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert controller-manager system:kube-controller-manager ""
  cert scheduler system:kube-scheduler ""
  cert kubelet "system:node:$NODE" system:nodes
  cert kubelet-serving "system:node:$NODE" system:nodes "IP:$NODE_IP,DNS:$NODE"
  cert kube-proxy system:kube-proxy ""
  # kube-router watches pods, namespaces and policies with its own identity (RBAC below).
  cert kube-router system:kube-router ""
  CA=front-proxy-ca cert front-proxy-client front-proxy-client ""
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 600 "$PKI"/*.key
  for who in admin controller-manager scheduler kubelet kube-proxy kube-router; do
    kubeconfig "$who" "$who"
  done
}

# --- network ------------------------------------------------------------------------------

make_netns() {
  ip netns add "$NETNS"
  in_netns ip link set lo up
  in_netns ip addr add "$NODE_IP/32" dev lo
  # A process of the node (the API server calling a webhook, the tests) needs a route to a
  # Service address before kube-proxy's DNAT can rewrite it: connect() looks the route up
  # first, and there is no default route here. Through lo, a packet no Service rule rewrites
  # is simply dropped; nothing leaves the namespace either way.
  in_netns ip route add "$SERVICE_CIDR" dev lo
  # Pod addresses not (or no longer) given out fail at once rather than hang.
  in_netns ip route add unreachable "$POD_CIDR"
  in_netns sysctl -qw net.ipv4.ip_forward=1
  mkdir -p "$CLUSTER/cni"
  # host-local hands out pod addresses from the node's range; ptp gives each pod a veth with a
  # host route (see the top of this file for why not a bridge).
  cat > "$CLUSTER/cni/10-jobrelay.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "jobrelay",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CLUSTER/cni-ipam",
        "ranges": [[{"subnet": "${POD_CIDR%.*.*}.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# --- daemons ------------------------------------------------------------------------------

start_etcd() {
  # --unsafe-no-fsync: a throwaway single-node cluster on a disk other engineers benchmark on;
  # losing it on power loss costs nothing, and fsync per write would make it the slowest part.
  start etcd "$ETCD/etcd" --name "$NODE" --data-dir "$CLUSTER/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$NODE=http://127.0.0.1:2380" --unsafe-no-fsync --log-level warn
  wait_for etcd 60 in_netns curl -fsS http://127.0.0.1:2379/health
}

start_control_plane() {
  start kube-apiserver "$KUBERNETES/kube-apiserver" \
    --advertise-address "$NODE_IP" --bind-address 0.0.0.0 --secure-port 6443 \
    --etcd-servers http://127.0.0.1:2379 \
    --service-cluster-ip-range "$SERVICE_CIDR" --allow-privileged=true \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --client-ca-file "$PKI/ca.crt" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" \
    --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true
  wait_for kube-apiserver 120 kubectl_ get --raw /readyz
  start kube-controller-manager "$KUBERNETES/kube-controller-manager" \
    --kubeconfig "$CLUSTER/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$CLUSTER/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$CLUSTER/controller-manager.kubeconfig" \
    --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --allocate-node-cidrs --cluster-cidr "$POD_CIDR" --node-cidr-mask-size 24 \
    --service-cluster-ip-range "$SERVICE_CIDR"
  start kube-scheduler "$KUBERNETES/kube-scheduler" \
    --kubeconfig "$CLUSTER/scheduler.kubeconfig" \
    --authentication-kubeconfig "$CLUSTER/scheduler.kubeconfig" \
    --authorization-kubeconfig "$CLUSTER/scheduler.kubeconfig" --leader-elect=false
}

start_containerd() {
  mkdir -p "$CONTAINERD_ROOT" "$RUN/containerd"
  cat > "$CLUSTER/containerd.toml" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$RUN/containerd"
[grpc]
  address = "$RUN/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/jobrelay/pause:1"
  # This sandbox's root lacks CAP_SYS_RESOURCE, so runc cannot lower a process's
  # oom_score_adj below its parent's; the kubelet asks -998 for every pod sandbox, and without
  # this runc fails with "can't get final child's PID from pipe: EOF". Clamp to containerd's.
  restrict_oom_score_adj = true
  # Pod network namespaces under $RUN, not /var/run/netns, so k8s-down finds every one.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's state apart from any other containerd's on the machine.
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CLUSTER/cni"
EOF
  start containerd containerd --config "$CLUSTER/containerd.toml"
  wait_for containerd 30 ctr --address "$RUN/containerd.sock" version
}

import_images() {
  local images tar name have
  images=$("$here/k8s-images.sh" | sed -n 's/^IMAGES=//p')
  have=$(ctr --address "$RUN/containerd.sock" -n k8s.io images ls -q)
  for tar in "$images"/*.oci.tar; do
    # Imported before with the same key: skip (the key file names what the archive holds).
    name="$(basename "$tar" .oci.tar)"
    if [[ -f "$CONTAINERD_ROOT/imported-$name" && "$(cat "$CONTAINERD_ROOT/imported-$name")" == "$(cat "$tar.key")" ]] \
      && grep -q . <<<"$have"; then
      continue
    fi
    log "importing $name into containerd"
    nice -n 15 ctr --address "$RUN/containerd.sock" -n k8s.io images import --no-unpack "$tar" >/dev/null
    cp "$tar.key" "$CONTAINERD_ROOT/imported-$name"
  done
}

start_kubelet() {
  mkdir -p "$CLUSTER/kubelet" "$CLUSTER/pod-logs"
  # Pods with dnsPolicy Default get this; there is no upstream DNS in the cluster's network.
  echo "options ndots:1" > "$CLUSTER/resolv.conf"
  cat > "$CLUSTER/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 only (see the top of this file).
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$RUN/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
clusterDomain: cluster.local
clusterDNS: [$DNS_SERVICE_IP]
resolvConf: $CLUSTER/resolv.conf
podLogsDir: $CLUSTER/pod-logs
failSwapOn: false
# Other engineers' files share this disk: evict only when it is really full.
evictionHard:
  memory.available: 200Mi
  nodefs.available: 2%
  imagefs.available: 2%
  nodefs.inodesFree: 2%
imageGCHighThresholdPercent: 100
serializeImagePulls: false
EOF
  start kubelet "$KUBERNETES/kubelet" --config "$CLUSTER/kubelet.yaml" \
    --kubeconfig "$CLUSTER/kubelet.kubeconfig" --root-dir "$CLUSTER/kubelet" \
    --hostname-override "$NODE" --node-ip "$NODE_IP" --v 1
  wait_for "the node" 120 kubectl_ get node "$NODE"
}

start_kube_proxy() {
  cat > "$CLUSTER/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $POD_CIDR
clientConnection: {kubeconfig: $CLUSTER/kube-proxy.kubeconfig}
hostnameOverride: $NODE
# nf_conntrack_max and its timeouts are machine-wide, not per network namespace: leave them.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy "$KUBERNETES/kube-proxy" --config "$CLUSTER/kube-proxy.yaml"
}

start_kube_router() {
  # NetworkPolicy enforcement only: routes and Services are ptp's and kube-proxy's.
  start kube-router "$KUBE_ROUTER/kube-router" --kubeconfig "$CLUSTER/kube-router.kubeconfig" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --hostname-override "$NODE" --metrics-port 0 --health-port 0
}

# --- add-ons ------------------------------------------------------------------------------

apply_addons() {
  kubectl_ apply -f "$here/k8s/cluster/base.yaml" >/dev/null
  kubectl_ -n kube-system rollout status deploy/coredns --timeout 180s >/dev/null
  log "installing the Dapr control plane v$DAPR_RUNTIME_VERSION from its chart in the dapr module"
  local dapr_chart
  dapr_chart="$(go env GOMODCACHE)/github.com/dapr/dapr@v$DAPR_RUNTIME_VERSION/charts/dapr"
  kubectl_ apply --server-side -f "$dapr_chart/crds" >/dev/null
  kubectl_ create namespace dapr-system --dry-run=client -o yaml | kubectl_ apply -f - >/dev/null
  helm template dapr "$dapr_chart" --namespace dapr-system \
    -f "$here/k8s/cluster/dapr-values.yaml" --set "global.tag=$DAPR_RUNTIME_VERSION" \
    | kubectl_ apply -f - >/dev/null
  kubectl_ -n dapr-system rollout status deploy/dapr-sidecar-injector deploy/dapr-operator \
    deploy/dapr-sentry --timeout 300s >/dev/null
  kubectl_ -n dapr-system rollout status statefulset/dapr-scheduler-server \
    statefulset/dapr-placement-server --timeout 300s >/dev/null
}

# kustomization_on DIR BASE: start DIR/kustomization.yaml on BASE (named relative to DIR, as
# kustomize wants); the caller appends the images and patches it changes.
kustomization_on() {
  mkdir -p "$1"
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\n' \
    "$(realpath --relative-to="$1" "$2")" > "$1/kustomization.yaml"
}

install_keda() {
  log "installing KEDA v$KEDA_VERSION from the config/ of its module"
  local keda_config
  keda_config="$(go env GOMODCACHE)/github.com/kedacore/keda/v2@v$KEDA_VERSION/config/default"
  # KEDA's own kustomization, with the images built here and never pulled (the metrics
  # server's says Always), and CPU requests cut from 100m each to leave the 2-core node's
  # room to the workers KEDA scales.
  kustomization_on "$CLUSTER/keda" "$keda_config"
  cat >> "$CLUSTER/keda/kustomization.yaml" <<EOF
images:
  - {name: ghcr.io/kedacore/keda, newName: localhost/kedacore/keda, newTag: "$KEDA_VERSION"}
  - {name: ghcr.io/kedacore/keda-metrics-apiserver, newName: localhost/kedacore/keda-metrics-apiserver, newTag: "$KEDA_VERSION"}
  - {name: ghcr.io/kedacore/keda-admission-webhooks, newName: localhost/kedacore/keda-admission-webhooks, newTag: "$KEDA_VERSION"}
patches:
  - target: {kind: Deployment}
    patch: |
      - op: replace
        path: /spec/template/spec/containers/0/imagePullPolicy
        value: Never
      - op: replace
        path: /spec/template/spec/containers/0/resources/requests/cpu
        value: 25m
EOF
  "$(kustomize_bin)" build --load-restrictor LoadRestrictionsNone "$CLUSTER/keda" \
    | kubectl_ apply --server-side -f - >/dev/null
  kubectl_ -n keda rollout status deploy/keda-operator deploy/keda-metrics-apiserver deploy/keda-admission \
    --timeout 300s >/dev/null
}

# The Secrets of docs/deployment.md; the API key's plaintext stays in $CLUSTER for
# `make k8s-test`.
create_secrets() {
  local py="$repo/.venv/bin/python"
  kubectl_ create namespace jobrelay --dry-run=client -o yaml | kubectl_ apply -f - >/dev/null
  for name in jobrelay-dapr-api-token jobrelay-app-api-token; do
    kubectl_ -n jobrelay create secret generic "$name" --from-literal=token="$(openssl rand -hex 32)" >/dev/null
  done
  kubectl_ -n jobrelay create secret generic jobrelay-state-key \
    --from-literal=key="$(openssl rand -hex 32)" >/dev/null
  # The in-cluster Redis's password (docs/deployment.md): Redis requires it, the sidecars'
  # Redis components and KEDA send it.
  kubectl_ -n jobrelay create secret generic jobrelay-redis-auth \
    --from-literal=password="$(openssl rand -hex 32)" >/dev/null
  (cd "$repo" && "$py" -m scripts.k8s.cluster_secrets "$CLUSTER/api-key.json") > "$CLUSTER/secrets.env"
  # shellcheck disable=SC1091
  source "$CLUSTER/secrets.env"
  kubectl_ -n jobrelay create secret generic jobrelay-api-keys --from-literal=API_KEYS="$API_KEYS" >/dev/null
  kubectl_ -n jobrelay create secret generic jobrelay-webhook-secrets \
    --from-literal=WEBHOOK_SECRETS="$WEBHOOK_SECRETS" >/dev/null
  chmod 600 "$CLUSTER/secrets.env" "$CLUSTER/api-key.json"
}

# A cluster gives a PersistentVolumeClaim its storage through a provisioner (kind's
# local-path, a cloud disk); this one-node cluster has none, so Redis's claim (`redis-data`,
# k8s/redis) gets a hostPath volume on the node, reserved for that claim alone, owned by the
# uid the Redis pod runs as. It lives in $CLUSTER, so every `k8s-up` starts empty.
provide_redis_volume() {
  local dir="$CLUSTER/volumes/redis-data"
  mkdir -p "$dir"
  chown 999:999 "$dir"
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: jobrelay-redis-data
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {namespace: jobrelay, name: redis-data}
  hostPath: {path: "$dir", type: Directory}
EOF
}

apply_jobrelay() {
  log "applying k8s/overlays/local"
  provide_redis_volume
  # The overlay as it is, with one image swapped: its Redis (redis:7.4.1-alpine, from Docker
  # Hub) cannot be pulled here, so Debian's Redis 7.0 built by k8s-images.sh takes its place.
  kustomization_on "$CLUSTER/overlay" "$repo/k8s/overlays/local"
  cat >> "$CLUSTER/overlay/kustomization.yaml" <<EOF
images:
  - name: redis
    newName: localhost/jobrelay/redis
    newTag: 7.0-debian12
EOF
  # Without KEDA (debugging only) its ScaledObject has no kind to be; the rest still applies.
  "$(kustomize_bin)" build --load-restrictor LoadRestrictionsNone "$CLUSTER/overlay" \
    | kubectl_ apply -f - >/dev/null || without keda
  kubectl_ -n jobrelay rollout status deploy/redis deploy/model deploy/intake deploy/status --timeout 600s
}

without() { [[ " ${JOBRELAY_K8S_WITHOUT:-} " == *" $1 "* ]]; }

up() {
  [[ $(id -u) -eq 0 ]] || die "needs root (network namespace, mounts, cgroups)"
  [[ -e "/run/netns/$NETNS" ]] && die "already up (make k8s-down first)"
  local t0=$SECONDS
  install_debian_packages
  load_binaries
  "$here/k8s-images.sh" >/dev/null
  rm -rf "$CLUSTER"
  mkdir -p "$CLUSTER" "$LOGS" "$RUN"
  for k in "${KERNEL_TUNABLES[@]}"; do echo "$k $(cat "/proc/sys/$k")"; done > "$STATE/kernel-tunables"
  make_pki
  make_netns
  log "starting etcd and the control plane"
  start_etcd
  start_control_plane
  start_containerd
  import_images
  log "starting the kubelet, kube-proxy and kube-router"
  start_kubelet
  start_kube_proxy
  # For debugging the cluster itself: stop before the add-ons and jobrelay.
  [[ "${JOBRELAY_K8S_UP_UNTIL:-}" == node ]] && return 0
  kubectl_ apply -f "$here/k8s/cluster/rbac.yaml" >/dev/null
  # JOBRELAY_K8S_WITHOUT (debugging the cluster only) leaves out pieces: kube_router, keda.
  without kube_router || start_kube_router
  apply_addons
  without keda || install_keda
  create_secrets
  apply_jobrelay
  log "up in $((SECONDS - t0)) s; kubectl: scripts/k8s-cluster.sh kubectl get pods -A"
}

stop_pid() {
  local file=$1 pid
  [[ -f "$file" ]] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

down() {
  local ctr=(ctr --address "$RUN/containerd.sock" -n k8s.io) id pid
  # The kubelet first, so it restarts nothing while the containers go.
  stop_pid "$RUN/kubelet.pid"
  if [[ -S "$RUN/containerd.sock" ]] && "${ctr[@]}" version >/dev/null 2>&1; then
    for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    sleep 2
    for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do
      "${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  for name in kube-router kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do
    stop_pid "$RUN/$name.pid"
  done
  # Shims that outlived their tasks: by the pid each left in its bundle, never by name.
  for pid in $(cat "$RUN"/containerd/io.containerd.runtime.v2.task/k8s.io/*/shim.pid 2>/dev/null); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Mounts the kubelet and containerd left (volumes, root filesystems, sandbox namespaces).
  local mnt
  for mnt in $( { grep -oE " ($STATE|$RUN)[^ ]*" /proc/self/mounts || true; } | sort -r); do
    umount -l "$mnt" 2>/dev/null || true
  done
  # The pods' cgroups (kubepods under every cgroup v1 hierarchy), deepest first.
  for hierarchy in /sys/fs/cgroup/*/; do
    [[ -d "$hierarchy/kubepods" ]] || continue
    find "$hierarchy/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  ip netns del "$NETNS" 2>/dev/null || true
  if [[ -f "$STATE/kernel-tunables" ]]; then
    while read -r k v; do echo "$v" > "/proc/sys/$k"; done < "$STATE/kernel-tunables"
    rm -f "$STATE/kernel-tunables"
  fi
  rm -rf "$CLUSTER" "$RUN"
  log "down: nothing of the cluster is running (images kept in $CONTAINERD_ROOT)"
}

status() {
  [[ -e "/run/netns/$NETNS" ]] || { log "not running"; return 0; }
  for f in "$RUN"/*.pid; do
    printf '%-26s %s\n' "$(basename "$f" .pid)" "$(kill -0 "$(cat "$f")" 2>/dev/null && echo running || echo stopped)"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  kubectl) shift; load_binaries; kubectl_ "$@" ;;
  exec) shift; in_netns "$@" ;;
  test)
    load_binaries
    [[ -e "/run/netns/$NETNS" ]] || die "not running (make k8s-up first)"
    mkdir -p "$repo/build"
    cd "$repo"
    KUBECTL="$KUBERNETES/kubectl" KUBECONFIG="$KUBECONFIG_ADMIN" \
      JOBRELAY_K8S_KEYS="$CLUSTER/api-key.json" JOBRELAY_K8S_FIGURES="$repo/build/k8s-figures.json" \
      in_netns "$repo/.venv/bin/python" -m scripts.k8s.cluster_test
    ;;
  *) die "usage: $0 up|down|test|status|kubectl ARGS...|exec COMMAND..." ;;
esac
