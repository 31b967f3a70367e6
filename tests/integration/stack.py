"""The real stack for integration tests: a component profile's broker and store (private
instances, tests/integration/profiles.py), real daprd sidecars and the apps, launched by the
real Dapr CLI (`dapr run -f`) from a run file written for this session.

Nothing here stands in for Dapr, a broker, a store or the model. The worker reaches the real
model through a fault-injecting proxy (tests/doubles/flaky_model.py, a test double) that
passes everything through unless a job's text asks for a failure. Ports are picked free so a
developer's `make run` on the default ports can keep running beside the tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from jobrelay.contract.credentials import hash_key, new_key, new_webhook_secret
from tests import identity_provider
from tests.doubles import flaky_model
from tests.integration import otlp, profiles
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
APPS = ("model", "intake", "worker", "status")
# Which worker a stack runs: the Python one (apps/worker), the Go one (apps/worker-go), or
# both side by side under the one app id `worker` (one consumer group; scripts/runfile.py).
WORKERS = ("python", "go", "both")
# The Go worker's entry in `ports`: its own app port and sidecar, app id `worker`.
GO_WORKER = "worker-go"
# The development secret dapr.yaml gives the status app (docs/api.md, "Webhooks").
WEBHOOK_SECRET = "whsec_am9icmVsYXktbG9jYWwtZGV2ZWxvcG1lbnQtc2VjcmV0"  # noqa: S105 (public dev secret)
# Small quotas for tenants of tests/integration/test_quotas.py alone (one tenant per test,
# so no test spends another's); every other tenant has the generous defaults.
QUOTA_TENANTS = {
    "quota-rate": {"submissions_per_minute": 3},
    "quota-burst": {"submissions_per_minute": 5},
    "quota-queue": {"queued_jobs": 2},
    "quota-heal": {"queued_jobs": 1},
}
# The one tenant allowed the admin routes (JOBRELAY_INTAKE_OPERATORS).
OPERATOR = "ops"
# Authentication is on in the test stack, as in production: one API key per tenant, fresh
# per session, only their hashes handed to the secret store. "default" is the tenant every
# test acts as unless it says otherwise (the `client` fixture sends its key).
API_KEYS = {
    tenant: new_key()
    for tenant in (
        "default",
        "tenant-a",
        "tenant-b",
        "tenant-c",
        "fuzz",
        OPERATOR,
        "noisy",
        *QUOTA_TENANTS.keys(),
    )
}
# Each tenant's webhook signing secret (the secret WEBHOOK_SECRETS). `default` keeps the
# documented development secret, so tests acting as `default` verify with WEBHOOK_SECRET;
# `tenant-c` and `fuzz` have none, as tenants nobody made one for.
WEBHOOK_SECRETS = {
    "default": WEBHOOK_SECRET,
    "tenant-a": new_webhook_secret(),
    "tenant-b": new_webhook_secret(),
    # Points its webhooks at receivers that never answer (tests/integration/test_hardening.py).
    "noisy": new_webhook_secret(),
}
# The sidecars' API token and the apps' token, as `make run` sets them (scripts/run.sh).
DAPR_API_TOKEN = new_key()
APP_API_TOKEN = new_key()
# AES-256 for the encrypted state store: 32 random bytes, hex (how daprd reads the key).
STATE_KEY = secrets.token_hex(32)


@dataclass(frozen=True)
class Ports:
    app: int
    dapr_http: int
    dapr_grpc: int


@dataclass
class Stack:
    workdir: Path
    ports: dict[str, Ports]
    profile: str  # the components/ folder the sidecars load
    worker: str = "python"  # which worker runs the jobs (WORKERS)
    process: subprocess.Popen[bytes] | None = None
    servers: profiles.Servers | None = None
    model_double: flaky_model.Running | None = None
    otlp: otlp.Running | None = None  # receives every app's and sidecar's spans
    # The OIDC provider whose JWTs intake and status accept beside API keys.
    idp: identity_provider.IdentityProvider | None = None
    # Settings for every app on top of the run file's (a stack of one suite's own).
    app_env: dict[str, str] | None = None

    def url(self, app: str) -> str:
        if app == "worker" and app not in self.ports:
            app = GO_WORKER  # the one worker there is
        return f"http://127.0.0.1:{self.ports[app].app}"

    def sidecar(self, app: str) -> str:
        """The Dapr HTTP API of `app`'s sidecar."""
        if app == "worker" and app not in self.ports:
            app = GO_WORKER
        return f"http://127.0.0.1:{self.ports[app].dapr_http}"

    @property
    def log(self) -> Path:
        return self.workdir / "dapr-run.log"


def dapr_runtime() -> Path:
    """The cached daprd + CLI (built by scripts/dapr-build.sh; instant once built)."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "dapr-build.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def go_worker_binary() -> Path:
    """The Go worker (built by scripts/worker-go-build.sh; instant once built)."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "worker-go-build.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def _apps(stack: Stack) -> dict[str, str]:
    """Each entry of `ports` and the app id its sidecar runs under."""
    names = [app for app in APPS if app != "worker" or stack.worker != "go"]
    if stack.worker in ("go", "both"):
        names.append(GO_WORKER)
    return {name: "worker" if name == GO_WORKER else name for name in names}


def _command(app: str) -> list[str]:
    if app == GO_WORKER:
        return [str(go_worker_binary())]
    return [sys.executable, "-m", f"apps.{app}"]


def run_file(stack: Stack, only: dict[str, Ports] | None = None, name: str = "dapr") -> Path:
    """A Multi-App Run file like dapr.yaml, with this session's ports and URLs; of the apps
    in `only` (with those ports) alone, if given (a replica: start_replica)."""
    env = {
        # The apps run from the source tree (they are not installed), each in a folder of
        # its own for its logs.
        "PYTHONPATH": str(ROOT),
        "JOBRELAY_INTAKE_STATUS_BASE_URL": stack.url("status"),
        "JOBRELAY_STATUS_PUBLIC_BASE_URL": stack.url("status"),
        "JOBRELAY_WORKER_MODEL_BASE_URL": stack.model_double.url
        if stack.model_double
        else f"{stack.url('model')}/v1",
        "JOBRELAY_STATUS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # The web page sends the API key to this intake only (apps/status/web/app.js).
        "JOBRELAY_STATUS_INTAKE_PUBLIC_URL": stack.url("intake"),
        "JOBRELAY_AUTH_SECRET_STORE": "jobrelay-secrets",
        **_jwt_env(stack),
        # The tests' webhook receivers listen on loopback; every other private range stays
        # refused (tests/integration/test_security.py).
        "JOBRELAY_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "JOBRELAY_QUOTA_TENANTS": json.dumps(QUOTA_TENANTS),
        "JOBRELAY_INTAKE_OPERATORS": json.dumps([OPERATOR]),
        # The Go worker starts in its own folder; the Python one finds the file itself.
        "JOBRELAY_WORKER_MODELS_FILE": str(ROOT / "config" / "models.yaml"),
        # The reference sample's page, served from an origin of its own.
        "JOBRELAY_INTAKE_CORS_ORIGINS": json.dumps([REFERENCE_PAGE_ORIGIN]),
        "JOBRELAY_STATUS_CORS_ORIGINS": json.dumps([REFERENCE_PAGE_ORIGIN]),
        **(stack.app_env or {}),
    }
    app_ids = _apps(stack)
    apps = [
        {
            "appID": app_ids[app],
            "appDirPath": str(stack.workdir / (name if only else app)),
            "appPort": ports.app,
            "daprHTTPPort": ports.dapr_http,
            "daprGRPCPort": ports.dapr_grpc,
            "command": _command(app),
            "env": env,
        }
        for app, ports in (only or stack.ports).items()
    ]
    run = {
        "version": 1,
        "common": {
            "resourcesPaths": [
                str(ROOT / "components" / stack.profile),
                str(ROOT / "components" / "common"),
            ],
            "configFilePath": str(ROOT / "components" / "config.yaml"),
            "placementHostAddress": "",
            "logLevel": "info",
        },
        "apps": apps,
    }
    path = stack.workdir / f"{name}.yaml"
    path.write_text(json.dumps(run, indent=2))  # JSON is YAML
    return path


def start(
    workdir: Path,
    profile: str = "redis",
    timeout: float = 120.0,
    worker: str = "python",
    app_env: dict[str, str] | None = None,
) -> Stack:
    if worker not in WORKERS:
        raise ValueError(f"no worker {worker!r}; pick one of {WORKERS}")
    stack = Stack(workdir=workdir, ports={}, profile=profile, worker=worker, app_env=app_env)
    stack.ports = {name: Ports(free_port(), free_port(), free_port()) for name in _apps(stack)}
    for name in stack.ports:
        (workdir / name).mkdir()  # the CLI writes each app's logs under its appDirPath
    stack.servers = profiles.up(profile, workdir)
    stack.model_double = flaky_model.start(f"{stack.url('model')}/v1")
    stack.otlp = otlp.start()
    stack.idp = identity_provider.IdentityProvider().start()
    runtime = dapr_runtime()
    # daprd inherits this environment (not the run file's env:), so the profile's server
    # addresses, which its components read through envRef, go here.
    env = {**os.environ, "DAPR_RUNTIME_PATH": str(runtime), **stack.servers.daprd_env}
    env.update(security_env())
    env.update(otel_env(stack.otlp.endpoint))
    with stack.log.open("wb") as log:
        stack.process = subprocess.Popen(
            [str(runtime / ".dapr" / "bin" / "dapr"), "run", "-f", str(run_file(stack))],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown reaches every child
        )
    try:
        _wait_healthy(stack, timeout)
        _wait_flowing(stack, timeout)
    except BaseException:
        stop(stack)  # the fixture's teardown never runs for a stack that failed to start
        raise
    return stack


def interrupt(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C for the CLI (it stops apps and sidecars), then SIGKILL whatever is left."""
    if process.poll() is None:
        pgid = os.getpgid(process.pid)
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def security_env() -> dict[str, str]:
    """What daprd (and, through the CLI, the apps) inherit to run locked down: the tokens,
    and the key table and webhook secrets the secret store component
    (components/common/secretstore.yaml) serves as the secrets API_KEYS and WEBHOOK_SECRETS."""
    table = {hash_key(key): tenant for tenant, key in API_KEYS.items()}
    return {
        "DAPR_API_TOKEN": DAPR_API_TOKEN,
        "APP_API_TOKEN": APP_API_TOKEN,
        "JOBRELAY_SECRET_API_KEYS": json.dumps(table),
        "JOBRELAY_SECRET_WEBHOOK_SECRETS": json.dumps(WEBHOOK_SECRETS),
        # The state store's encryption key (components/common/keystore.yaml).
        "JOBRELAY_KEY_STATE": STATE_KEY,
    }


def _jwt_env(stack: Stack) -> dict[str, str]:
    """JWT bearer tokens from the session's identity provider, beside the API keys."""
    if stack.idp is None:
        return {}
    return {
        "JOBRELAY_AUTH_JWKS_URL": stack.idp.jwks_url,
        "JOBRELAY_AUTH_JWT_ISSUER": identity_provider.ISSUER,
        "JOBRELAY_AUTH_JWT_AUDIENCE": identity_provider.AUDIENCE,
    }


# Where the reference sample's page would be served from (its React dev server).
REFERENCE_PAGE_ORIGIN = "http://127.0.0.1:3000"


def client_headers(tenant: str = "default") -> dict[str, str]:
    """A client of `tenant`; the sidecar token too, which tests use to read the store."""
    return {"Authorization": f"Bearer {API_KEYS[tenant]}", "dapr-api-token": DAPR_API_TOKEN}


def otel_env(endpoint: str) -> dict[str, str]:
    """The standard OpenTelemetry settings, read by the apps and by daprd alike."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",  # daprd: plain HTTP on loopback
        "OTEL_BSP_SCHEDULE_DELAY": "500",  # ms: spans reach the receiver within a second
        # Every job traced (the default traces a share): the tests look for a given job's spans.
        "OTEL_TRACES_SAMPLER_ARG": "1",
    }


def _wait_flowing(stack: Stack, timeout: float) -> None:
    """Until a job goes all the way through. A healthy sidecar may not have bound its
    subscription at the broker yet (RabbitMQ drops what reaches an exchange with no queue
    bound; a Kafka consumer group takes a rebalance to get its partitions)."""
    deadline = time.monotonic() + timeout
    body = {"task": "embed", "input": {"text": "warm-up"}}
    with httpx.Client(timeout=10, headers=client_headers()) as client:
        while time.monotonic() < deadline:
            url = client.post(f"{stack.url('intake')}/v1/jobs", json=body).json()["status_url"]
            for _ in range(50):
                if client.get(url).status_code == 200:
                    return
                time.sleep(0.1)
    raise RuntimeError(f"no job went through in {timeout:.0f}s:\n{stack.log.read_text()[-4000:]}")


def _wait_healthy(stack: Stack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = set(stack.ports)
    with httpx.Client(timeout=2) as client:
        while waiting:
            assert stack.process is not None
            if stack.process.poll() is not None:
                raise RuntimeError(f"dapr run exited early:\n{stack.log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"not healthy in {timeout:.0f}s: {sorted(waiting)}\n"
                    f"{stack.log.read_text()[-4000:]}"
                )
            for app in list(waiting):
                try:
                    if client.get(f"{stack.url(app)}/healthz").status_code == 200:
                        waiting.discard(app)
                except httpx.TransportError:
                    pass
            time.sleep(0.2)


def stop(stack: Stack) -> None:
    """Ctrl-C for the CLI (it stops apps and sidecars), then SIGKILL whatever is left."""
    if stack.process is not None:
        interrupt(stack.process)
    if stack.model_double is not None:
        stack.model_double.stop()
    if stack.otlp is not None:
        stack.otlp.stop()
    if stack.idp is not None:
        stack.idp.stop()
    if stack.servers is not None:
        profiles.down(stack.servers)
