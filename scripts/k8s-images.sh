#!/usr/bin/env bash
# Builds every image the local cluster runs as OCI archives in the cache, with no container
# engine and no registry (neither exists here), for scripts/k8s-cluster.sh to import into
# containerd:
#   - one Debian 12 root filesystem from debootstrap (Python 3.11, CA certificates, Redis),
#     the shared bottom layer, standing in for each Dockerfile's `FROM`;
#   - jobrelay/{intake,status,worker,model}:0.1.0, by running apps/<app>/Dockerfile itself
#     (scripts/k8s/dockerfile.py), so the cluster runs what the Dockerfiles describe;
#   - the Dapr control plane and daprd, CoreDNS, KEDA and kube-router: each its static binary
#     from scripts/k8s-build.sh on a small layer with a non-root user and CA certificates;
#   - Redis (Debian's 7.0) and the pod sandbox ("pause") image, from the base layer.
# Every archive is keyed by what it is built from, so a second run only checks hashes.
#
# Needs root (debootstrap, chroot, overlay mounts). Prints IMAGES=<folder of *.tar> last.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"

# Bump to rebuild the base when the package list below changes meaning.
BASE_REVISION=1
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,redis-server
DEBIAN_MIRROR=${JOBRELAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
APP_TAG=0.1.0
PY="$repo/.venv/bin/python"
[[ -x "$PY" ]] || PY=python3

images="$JOBRELAY_CACHE/k8s-images"
mkdir -p "$images"

oci() { (cd "$repo" && nice -n 15 "$PY" -m scripts.k8s.oci_image "$@"); }
log() { echo "k8s-images: $*" >&2; }

# The base root filesystem and its layer, once per revision.
base="$images/base-bookworm-$BASE_REVISION"
if [[ ! -f "$base/layer.tar" ]]; then
  log "debootstrap Debian 12 with $BASE_PACKAGES (a few minutes, once)"
  rm -rf "$base" "$base.tmp"
  mkdir -p "$base.tmp"
  nice -n 15 debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm \
    "$base.tmp/rootfs" "$DEBIAN_MIRROR" > "$base.tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$base.tmp/debootstrap.log" >&2; exit 1; }
  # What the images need of their own: the numeric users the manifests run as (10001 for the
  # apps, as their Dockerfiles create it; 999 for Redis, as k8s/redis expects; 65532 for the
  # Go programs, the "nonroot" user of distroless images the Dapr and KEDA charts assume), and
  # no package lists or caches.
  chroot "$base.tmp/rootfs" /bin/sh -c '
    set -e
    groupadd --system --gid 999 redis-k8s && useradd --system --uid 999 --gid 999 --no-create-home redis-k8s
    groupadd --gid 65532 nonroot && useradd --uid 65532 --gid 65532 --no-create-home nonroot
    mkdir -p /data && chown 999:999 /data
    apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/*.log'
  oci layer "$base.tmp/rootfs" "$base.tmp/layer.tar" >/dev/null
  mv "$base.tmp" "$base"
fi

# archive NAME KEY CONFIG_JSON LAYER...: an OCI archive of image NAME, rebuilt only when KEY
# (a hash of its inputs) changes.
archive() {
  local name=$1 key=$2 config=$3 file
  shift 3
  # The config is part of what the image is.
  key="$key-$(echo "$config" | sha256sum | cut -c1-8)"
  file="$images/$(echo "$name" | tr '/:' '__').oci.tar"
  if [[ -f "$file" && "$(cat "$file.key" 2>/dev/null)" == "$key" ]]; then
    return 0
  fi
  oci image --name "$name" --config "$config" --out "$file.partial" "$@"
  mv "$file.partial" "$file"
  echo "$key" > "$file.key"
  log "built $name"
}

# Docker's default PATH, which an image config must spell out (no engine adds it here).
ENV_PATH='"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# The apps, from their Dockerfiles. The key covers everything a Dockerfile COPYs.
build_app() {
  local app=$1 key dir
  key=$(cd "$repo" && { git ls-files -s apps src config pyproject.toml README.md scripts/k8s/image_requirements.py
                         sha256sum "$base/layer.tar" | cut -c1-64
                         git diff HEAD -- apps src config pyproject.toml README.md; } | sha256sum | cut -c1-16)
  dir="$images/app-$app-$key"
  if [[ ! -f "$dir/layer.tar" ]]; then
    log "building jobrelay/$app from apps/$app/Dockerfile (pip from PyPI; minutes)"
    rm -rf "$dir" "$dir.tmp"
    mkdir -p "$dir.tmp"
    (cd "$repo" && nice -n 15 "$PY" -m scripts.k8s.dockerfile --context "$repo" \
      --base "$base/rootfs" --dockerfile "apps/$app/Dockerfile" \
      --upper "$dir.tmp/upper" --config-out "$dir.tmp/config.json")
    oci layer "$dir.tmp/upper" "$dir.tmp/layer.tar" >/dev/null
    rm -rf "$dir.tmp/upper"
    # The builds of this app from older sources: a few hundred MB each, never used again.
    find "$images" -maxdepth 1 -name "app-$app-*" ! -name "app-$app-$key*" -exec rm -rf {} +
    mv "$dir.tmp" "$dir"
  fi
  archive "docker.io/jobrelay/$app:$APP_TAG" "$key" "$(cat "$dir/config.json")" \
    "$base/layer.tar" "$dir/layer.tar"
}

# A static Go binary at /NAME on the shared "static" layer (passwd, CA certificates, /tmp).
static_layer="$images/static-$BASE_REVISION.tar"
if [[ ! -f "$static_layer" ]]; then
  tmp=$(mktemp -d)
  mkdir -p "$tmp/etc/ssl/certs" "$tmp/tmp"
  chmod 1777 "$tmp/tmp"
  cp "$base/rootfs/etc/ssl/certs/ca-certificates.crt" "$tmp/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$tmp/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$tmp/etc/group"
  oci layer "$tmp" "$static_layer" >/dev/null
  rm -rf "$tmp"
fi
build_binary_image() {
  local name=$1 binary=$2 entry=$3 key dir
  key=$(hash_of "$binary" "$static_layer")
  local slug
  slug=$(echo "$name" | tr '/:' '__')
  dir="$images/bin-$slug-$key"
  if [[ ! -f "$dir/layer.tar" ]]; then
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/root"
    cp "$binary" "$dir.tmp/root/$entry"
    oci layer "$dir.tmp/root" "$dir.tmp/layer.tar" >/dev/null
    rm -rf "$dir.tmp/root"
    find "$images" -maxdepth 1 -name "bin-$slug-*" ! -name "bin-$slug-$key*" -exec rm -rf {} +
    mv "$dir.tmp" "$dir"
  fi
  archive "$name" "$key" "{\"User\":\"65532:65532\",\"Entrypoint\":[\"/$entry\"],\"WorkingDir\":\"/\",$ENV_PATH}" \
    "$static_layer" "$dir/layer.tar"
}

build_apps() {
  local app
  for app in intake status worker model; do
    build_app "$app"
  done
}

build_base_images() {
  local key
  key=$(sha256sum "$base/layer.tar" | cut -c1-16)
  # Redis from Debian: the entrypoint turns protected mode off, as the official image's does,
  # or Redis would refuse every client not on the pod's loopback (it has no password here).
  archive localhost/jobrelay/redis:7.0-debian12 "$key" \
    "{\"User\":\"999:999\",\"Entrypoint\":[\"/usr/bin/redis-server\",\"--protected-mode\",\"no\"],\"WorkingDir\":\"/data\",$ENV_PATH}" \
    "$base/layer.tar"
  # The sandbox container only holds the pod's namespaces open.
  archive localhost/jobrelay/pause:1 "$key" \
    "{\"User\":\"65532:65532\",\"Entrypoint\":[\"/bin/sleep\",\"infinity\"],$ENV_PATH}" "$base/layer.tar"
}

build_binaries() {
  local cmd daprd
  eval "$("$here/k8s-build.sh")"
  daprd="$JOBRELAY_CACHE/dapr-$DAPR_RUNTIME_VERSION-cli-$DAPR_CLI_VERSION/.dapr/bin/daprd"
  [[ -x "$daprd" ]] || "$here/dapr-build.sh" >/dev/null
  build_binary_image "localhost/dapr/daprd:$DAPR_RUNTIME_VERSION" "$daprd" daprd
  for cmd in operator injector sentry placement scheduler; do
    build_binary_image "localhost/dapr/$cmd:$DAPR_RUNTIME_VERSION" "$DAPR_CONTROL_PLANE/$cmd" "$cmd"
  done
  build_binary_image "localhost/coredns/coredns:$COREDNS_VERSION" "$COREDNS/coredns" coredns
  # Named and laid out as KEDA's config/ expects (/keda, /keda-adapter, ...).
  # k8s-build.sh failed already if KEDA did not build; absent here only when the caller left
  # it out of JOBRELAY_K8S_BUILD (debugging the cluster without KEDA).
  [[ -x "$KEDA/operator" ]] || return 0
  build_binary_image "localhost/kedacore/keda:$KEDA_VERSION" "$KEDA/operator" keda
  build_binary_image "localhost/kedacore/keda-metrics-apiserver:$KEDA_VERSION" "$KEDA/adapter" keda-adapter
  build_binary_image "localhost/kedacore/keda-admission-webhooks:$KEDA_VERSION" "$KEDA/webhooks" \
    keda-admission-webhooks
}

start=$SECONDS
for step in ${JOBRELAY_K8S_IMAGES:-apps base_images binaries}; do
  "build_$step"
done
log "images ready in $((SECONDS - start)) s"
echo "IMAGES=$images"
