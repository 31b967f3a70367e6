# The whole surface: setup, run, test, lint. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
VENV := .venv/bin

# Component profile (components/<PROFILE>/): `make run PROFILE=rabbitmq`. `make test` runs the
# end-to-end suite on every runnable profile; `make test PROFILE=kafka` (or PROFILES="redis
# kafka") on just those.
TEST_PROFILES := $(or $(PROFILES),$(PROFILE),redis rabbitmq kafka)
PROFILE ?= redis
# Which worker `make run` starts: python (apps/worker), go (apps/worker-go) or both, side by
# side on one consumer group (README, Polyglot workers).
WORKER ?= python
# What `make setup` installs: the profiles the goal will run on.
SETUP_PROFILES := $(if $(filter test,$(MAKECMDGOALS)),$(TEST_PROFILES),$(PROFILE))

.PHONY: setup run test lint unit go-lint go-unit contracts k8s-generate k8s-validate k8s-up k8s-test \
	k8s-down eval-local-model bench chaos traces

setup:
	@JOBRELAY_PROFILES="$(SETUP_PROFILES)" scripts/setup.sh

run: setup
	@JOBRELAY_PROFILE=$(PROFILE) JOBRELAY_WORKER=$(WORKER) scripts/run.sh

lint: setup go-lint
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy

# The Go worker (apps/worker-go): modules from the Go module proxy only (go.sum pins them),
# never a VCS host, which would hang on a network that reaches the proxy alone.
GO := cd apps/worker-go && GOPROXY=$${JOBRELAY_GOPROXY:-https://proxy.golang.org} GOTOOLCHAIN=local GOFLAGS="-mod=readonly -p=2" go

go-lint: setup
	@unformatted=$$(gofmt -l apps/worker-go); [[ -z "$$unformatted" ]] || { echo "gofmt: $$unformatted"; exit 1; }
	$(GO) vet ./...

# Its unit tests: every record and event it writes checked against contracts/, and the
# drift test that fails when contracts/ changes and the Go types do not.
go-unit: setup
	$(GO) test ./...

unit: setup
	$(VENV)/pytest tests/unit

# contracts/*.schema.json from the models in packages/contract (tests fail when they drift).
contracts: setup
	$(VENV)/python -m jobrelay.contract.schemas contracts

# k8s/dapr/ is generated from components/; k8s-validate fails until it is regenerated.
k8s-generate: setup
	$(VENV)/python -m scripts.k8s.dapr_resources

# Render every k8s/overlays/* with kustomize and check it against the Kubernetes, Dapr and KEDA
# schemas (scripts/k8s/validate.py); offline after the first run.
k8s-validate: setup
	$(VENV)/python -m scripts.k8s.validate

# A real one-node Kubernetes cluster on this machine, built from Go modules and Debian packages
# (scripts/k8s-build.sh, k8s-images.sh, k8s-cluster.sh; docs/kubernetes.md), with the Dapr
# control plane and KEDA, and k8s/overlays/local applied. Needs root. The first run builds for
# about an hour on one core; later runs reuse the caches.
k8s-up: setup
	@scripts/k8s-cluster.sh up

# On the cluster of k8s-up: sidecars injected, jobs through the Services, scopes, tokens and
# NetworkPolicies enforced, a worker pod deleted mid-job, 1 -> 3 -> 1 workers, KEDA on backlog.
k8s-test: setup
	@scripts/k8s-cluster.sh test

# Stops every process of the cluster and removes its network, mounts and cgroups.
k8s-down:
	@scripts/k8s-cluster.sh down

# docs/local-model.md: accuracy beside speed of the local embedders and chat model on the
# labelled sets in bench/data/labelled and bench/data/classify, the document readers, and
# extraction and summaries on the chat model (10-20 minutes on 2 cores, so not in `make test`).
eval-local-model: setup
	$(VENV)/python -m bench.classify_eval

# A trace viewer on http://127.0.0.1:9411 (Zipkin's server jar from Maven Central, cached like
# daprd); then `OTEL_TRACES_EXPORTER=zipkin make run` sends the apps' spans there.
traces:
	@scripts/trace-viewer.sh

# docs/benchmarks.md: every scenario of issue 10, jobrelay beside FastAPI + Celery + Redis and
# the synchronous design in one run (under 15 minutes on 2 cores, so not part of `make test`).
bench: setup
	@bench/install.sh
	$(VENV)/python -m bench

# docs/reliability.md: the chaos suite (tests/chaos: crashes, restarts, a poison job, a model
# outage, on the real stack; a few minutes), then its figures written into the doc. The doc is
# written even when a case fails, and the target then fails with pytest's status.
chaos: setup
	@mkdir -p build
	JOBRELAY_CHAOS_FIGURES=build/chaos-figures.json $(VENV)/pytest tests/chaos -p no:cacheprovider; \
	status=$$?; $(VENV)/python -m tests.chaos.report build/chaos-figures.json docs/reliability.md \
	&& exit $$status

test: lint k8s-validate go-unit
	JOBRELAY_TEST_PROFILES="$(TEST_PROFILES)" $(VENV)/pytest
