# Pinned versions, sourced by the setup scripts. The runtime and the Python SDK (pyproject.toml)
# move together on one release. 1.18.0 rather than 1.18.3: the module proxy this project builds
# from serves every dependency of daprd 1.18.0, but not durabletask-go v0.12.4 nor the pulsar fork
# that 1.18.3 needs.
DAPR_RUNTIME_VERSION=1.18.0
# The CLI is only a launcher (`dapr run -f`) and talks to daprd through command-line flags. The
# proxy serves the source of no CLI release after 1.12.0 (1.13 to 1.18 answer 403), so the CLI
# stays at 1.12.0; tests/integration proves it drives daprd 1.18.0.
DAPR_CLI_VERSION=1.12.0
# Expensive builds are cached outside the clone so a fresh clone on the same machine reuses them.
JOBRELAY_CACHE="${JOBRELAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jobrelay}"
# Apache Kafka for the `kafka` profile, from Maven Central. 3.9 is the last line that still
# speaks the protocol versions Dapr's Kafka client (sarama, configured for Kafka 2.0 by
# default) sends; Kafka 4 removed them.
KAFKA_VERSION=3.9.1
# The local Kubernetes cluster (make k8s-up; scripts/k8s-build.sh builds it from Go modules).
# 1.37.2 is the newest Kubernetes the proxy lists; its kubelet still runs on cgroup v1 (when told
# to) and still talks to Debian 12's containerd 1.6, which lacks the RuntimeConfig call (1.38
# drops both).
KUBERNETES_VERSION=1.37.2
# The etcd Kubernetes 1.37 pins in its go.mod (and kubeadm's DefaultEtcdVersion).
ETCD_VERSION=3.7.0
# kubeadm's CoreDNSVersion for Kubernetes 1.37.
COREDNS_VERSION=1.14.6
# Only renders Dapr's own chart from the dapr module (no repository is reached).
HELM_VERSION=3.22.0
# Dapr 1.18.0's scheduler pins go-etcd-cron v0.12.5, which the proxy refuses (403); the next
# patch release is the one the local cluster's scheduler is built with (k8s-build.sh).
DAPR_SCHEDULER_CRON_VERSION=v0.12.6
# The release whose CRDs make k8s-validate checks the ScaledObjects against, and the one the
# local cluster runs.
KEDA_VERSION=2.21.0
# The one kube-router release the proxy serves; used as NetworkPolicy controller only.
KUBE_ROUTER_VERSION=2.1.0
