"""The three designs under test, each started on free loopback ports with a private Redis
(scripts/redis.sh, the project's own), all pointed at one model double:

- jobrelay: intake, worker and status with real daprd sidecars, launched by the real Dapr
  CLI from a run file like dapr.yaml (the same components/redis and components/common);
- celery: FastAPI + Celery (threads pool, INFLIGHT) + Redis, the same submit-and-poll API;
- sync: FastAPI calling the model inside the request.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench import procs
from jobrelay.task_catalog import TASKS
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
JOBRELAY_APPS = ("intake", "worker", "status")
# Quotas on, as `make run` has them, with limits far above what the bench submits: every
# submit pays for its tenant's ledger, and none is refused (the bench is one tenant submitting
# past any sane quota on purpose, bursts and backlogs included).
QUOTAS_ABOVE_LOAD = {
    "JOBRELAY_QUOTA_SUBMISSIONS_PER_MINUTE": str(10**9),
    "JOBRELAY_QUOTA_QUEUED_JOBS": str(10**9),
}
QUOTAS_OFF = {"JOBRELAY_QUOTA_ENABLED": "false"}
# Jobs in flight per design: jobrelay's worker default (JOBRELAY_WORKER_MAX_INFLIGHT) and
# Celery's thread count, so both offer the model the same parallelism.
INFLIGHT = 8


@dataclass
class Redis:
    port: int
    dir: Path
    how: str  # "started" or "reused"; only a started one is stopped

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return int((self.dir / "redis.pid").read_text())

    def cli(self, *args: str) -> str:
        out = subprocess.run(  # noqa: S603
            ["redis-cli", "-p", str(self.port), *args],  # noqa: S607 (Debian's redis-cli)
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout

    def used_memory(self) -> int:
        for line in self.cli("info", "memory").splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1])
        raise RuntimeError("redis INFO has no used_memory")

    def stop(self) -> None:
        if self.how == "started":
            _redis_script("stop", self.port, self.dir)


def _redis_script(action: str, port: int, folder: Path) -> str:
    out = subprocess.run(  # noqa: S603
        [str(ROOT / "scripts" / "redis.sh"), action, str(port), str(folder)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def start_redis(folder: Path) -> Redis:
    port = free_port()
    return Redis(port, folder, _redis_script("start", port, folder))


@dataclass
class Design:
    name: str
    submit_url: str
    status_base: str  # GET {status_base}/v1/jobs/{id}
    parts: list[procs.Started] = field(default_factory=list)
    redis: Redis | None = None
    pids: dict[str, int] = field(default_factory=dict)  # component -> pid, for CPU and memory
    metrics: dict[str, str] = field(default_factory=dict)  # sidecar -> Prometheus URL
    sidecar_http: dict[str, str] = field(default_factory=dict)  # app -> its daprd HTTP API

    def status_url(self, job_id: str) -> str:
        return f"{self.status_base}/v1/jobs/{job_id}"

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()
        if self.redis is not None:
            self.redis.stop()


def _env(**extra: str) -> dict[str, str]:
    # The venv's Python and the repository on the path, as `make` runs them.
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def start_model_double(logdir: Path) -> tuple[procs.Started, str]:
    port = free_port()
    started = procs.launch(
        "model-double",
        [sys.executable, "-m", "bench.doubles.instant_model", "--port", str(port)],
        logdir,
        _env(),
        cwd=ROOT,
    )
    procs.wait_http(f"http://127.0.0.1:{port}/healthz", started)
    return started, f"http://127.0.0.1:{port}"


def start_sync(logdir: Path, model_url: str) -> Design:
    port = free_port()
    env = _env(JOBRELAY_BENCH_PORT=str(port), JOBRELAY_BENCH_MODEL_BASE_URL=f"{model_url}/v1")
    api = procs.launch("sync-api", [sys.executable, "-m", "bench.baselines.sync_api"], logdir, env)
    design = Design("sync", f"http://127.0.0.1:{port}/v1/jobs", "", parts=[api])
    procs.wait_http(f"http://127.0.0.1:{port}/healthz", api)
    design.pids = {"api": api.process.pid}
    return design


def start_celery(logdir: Path, model_url: str) -> Design:
    redis = start_redis(logdir / "celery-redis")
    port = free_port()
    env = _env(
        JOBRELAY_BENCH_PORT=str(port),
        JOBRELAY_BENCH_MODEL_BASE_URL=f"{model_url}/v1",
        JOBRELAY_BENCH_REDIS_URL=redis.url,
        JOBRELAY_BENCH_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
    )
    base = f"http://127.0.0.1:{port}"
    design = Design("celery", f"{base}/v1/jobs", base, redis=redis)
    worker_argv = [
        str(VENV_BIN / "celery"),
        "-A",
        "bench.baselines.celery_tasks",
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(INFLIGHT),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    design.parts.append(procs.launch("celery-worker", worker_argv, logdir, env, cwd=ROOT))
    api = procs.launch(
        "celery-api", [sys.executable, "-m", "bench.baselines.celery_api"], logdir, env
    )
    design.parts.append(api)
    try:
        procs.wait_http(f"{base}/healthz", api)
        _wait_flowing(design)
    except BaseException:
        design.stop()
        raise
    design.pids = {"api": api.process.pid, "worker": design.parts[0].process.pid}
    design.pids["redis"] = redis.pid
    return design


def _models_file(workdir: Path, model_url: str, shared_limit: int | None) -> Path:
    """The worker's model profiles: `embed` on the double only. Without `shared_limit` the
    worker's own in-flight limit (JOBRELAY_WORKER_MAX_INFLIGHT) is the only one, as with
    Celery's thread count; with it, the profile's cross-replica `max_concurrency` too."""
    profile: dict[str, object] = {
        "base_url": f"{model_url}/v1",
        "model": "instant-double",
        "capabilities": ["embeddings"],
    }
    if shared_limit is not None:
        profile["max_concurrency"] = shared_limit
    # Every task listed (the worker refuses to start otherwise); only embed has a model.
    tasks: dict[str, list[str]] = {name: [] for name in TASKS} | {"embed": ["bench-double"]}
    catalog = {"profiles": {"bench-double": profile}, "tasks": tasks}
    path = workdir / "models.yaml"
    path.write_text(json.dumps(catalog, indent=2))  # JSON is YAML
    return path


def plaintext_profile(workdir: Path) -> Path:
    """components/redis with the state store unencrypted: only to measure what the
    encryption costs (bench, section 8), never for use."""
    copy = workdir / "components-plaintext"
    copy.mkdir(parents=True, exist_ok=True)
    for path in (ROOT / "components" / "redis").glob("*.yaml"):
        component = yaml.safe_load(path.read_text())
        if component["metadata"]["name"] == "statestore":
            items = component["spec"]["metadata"]
            component["spec"]["metadata"] = [
                item for item in items if item["name"] != "primaryEncryptionKey"
            ]
            component.pop("auth", None)
        (copy / path.name).write_text(yaml.safe_dump(component))
    return copy


def _jobrelay_run_file(
    workdir: Path,
    ports: dict[str, dict[str, int]],
    model_url: str | None,
    shared_limit: int | None,
    extra_env: dict[str, str],
    profile: Path,
) -> Path:
    """The run file: dapr.yaml's apps and settings, on free ports. `model_url` None runs the
    built-in local model (apps/model) with the repository's config/models.yaml, exactly as
    `make run` does; else the worker calls the model double there."""
    env = {
        "JOBRELAY_INTAKE_STATUS_BASE_URL": f"http://127.0.0.1:{ports['status']['app']}",
        "JOBRELAY_STATUS_PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['status']['app']}",
        **QUOTAS_ABOVE_LOAD,
        **extra_env,
    }
    if model_url is None:
        env["JOBRELAY_WORKER_MODEL_BASE_URL"] = f"http://127.0.0.1:{ports['model']['app']}/v1"
    else:
        env["JOBRELAY_WORKER_MODEL_BASE_URL"] = f"{model_url}/v1"
        env["JOBRELAY_WORKER_MODELS_FILE"] = str(_models_file(workdir, model_url, shared_limit))
        env["JOBRELAY_WORKER_MAX_INFLIGHT"] = str(INFLIGHT)
    apps = []
    for app in ports:
        (workdir / app).mkdir(parents=True, exist_ok=True)
        apps.append(
            _as_in_dapr_yaml(app)
            | {
                "appID": app,
                "appDirPath": str(workdir / app),
                "appPort": ports[app]["app"],
                "daprHTTPPort": ports[app]["http"],
                "daprGRPCPort": ports[app]["grpc"],
                "metricsPort": ports[app]["metrics"],
                "command": [sys.executable, "-m", f"apps.{app}"],
                "env": env,
            }
        )
    run = {
        "version": 1,
        # As dapr.yaml: the same components, configuration and log levels as `make run`.
        "common": {
            "resourcesPaths": [str(profile), str(ROOT / "components/common")],
            "configFilePath": str(ROOT / "components" / "config.yaml"),
            "placementHostAddress": "",
            "logLevel": "warn",
            "enableApiLogging": False,
        },
        "apps": apps,
    }
    path = workdir / "dapr.yaml"
    path.write_text(json.dumps(run, indent=2))  # JSON is YAML
    return path


def _as_in_dapr_yaml(app: str) -> dict[str, Any]:
    """The app's per-app settings from the root dapr.yaml that shape its load (the worker's
    appMaxConcurrency and app health checks, the apps' own env), so the benchmark runs what
    `make run` runs."""
    run = yaml.safe_load((ROOT / "dapr.yaml").read_text())
    shaping = (
        "appMaxConcurrency",
        "enableAppHealthCheck",
        "appHealthCheckPath",
        "appHealthProbeInterval",
        "appHealthThreshold",
    )
    for entry in run.get("apps", []):
        if entry.get("appID") == app:
            return {k: entry[k] for k in shaping if k in entry}
    return {}


def dapr_runtime() -> Path:
    out = subprocess.run(  # noqa: S603
        [str(ROOT / "scripts" / "dapr-build.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def start_jobrelay(
    logdir: Path,
    model_url: str | None,
    shared_limit: int | None = None,
    extra_env: dict[str, str] | None = None,
    profile: Path = ROOT / "components" / "redis",
    name: str = "jobrelay",
) -> Design:
    """jobrelay as `make run` runs it; `extra_env` (the apps' settings) and `profile` (the
    components folder) make the variants that single out one feature's cost. `model_url`
    None: the built-in local model too, as `make run` has it."""
    logdir.mkdir(parents=True, exist_ok=True)
    redis = start_redis(logdir / "jobrelay-redis")
    workdir = logdir / "jobrelay"
    workdir.mkdir(parents=True, exist_ok=True)
    apps = ("model", *JOBRELAY_APPS) if model_url is None else JOBRELAY_APPS
    ports = {app: {k: free_port() for k in ("app", "http", "grpc", "metrics")} for app in apps}
    runtime = dapr_runtime()
    # daprd inherits the CLI's environment, not the run file's env:, so the Redis address the
    # components read through envRef goes here.
    env = _env(
        DAPR_RUNTIME_PATH=str(runtime),
        JOBRELAY_REDIS_HOST=f"127.0.0.1:{redis.port}",
        # The state store's encryption key (components/common/keystore.yaml), as run.sh
        # gives `make run`: the benchmark pays for encryption as a deployment does.
        JOBRELAY_KEY_STATE=secrets.token_hex(32),
    )
    run_file = _jobrelay_run_file(workdir, ports, model_url, shared_limit, extra_env or {}, profile)
    cli = [str(runtime / ".dapr" / "bin" / "dapr"), "run", "-f", str(run_file)]
    started = procs.launch("dapr-run", cli, logdir, env, cwd=workdir)
    base = {app: f"http://127.0.0.1:{ports[app]['app']}" for app in JOBRELAY_APPS}
    design = Design(name, f"{base['intake']}/v1/jobs", base["status"], parts=[started], redis=redis)
    try:
        for app in apps:
            url = f"http://127.0.0.1:{ports[app]['app']}/healthz"
            procs.wait_http(url, started, timeout=120)
        _wait_flowing(design)
    except BaseException:
        design.stop()
        raise
    design.pids = _jobrelay_pids(started.process.pid)
    design.pids["redis"] = redis.pid
    design.metrics = {
        app: f"http://127.0.0.1:{ports[app]['metrics']}/metrics" for app in JOBRELAY_APPS
    }
    design.sidecar_http = {app: f"http://127.0.0.1:{ports[app]['http']}" for app in JOBRELAY_APPS}
    return design


def _jobrelay_pids(cli_pid: int) -> dict[str, int]:
    """Each app's and each sidecar's pid, found below the Dapr CLI by their command lines."""
    found: dict[str, int] = {}
    for pid in procs.descendants(cli_pid):
        argv = procs.cmdline(pid)
        if argv and argv[0].endswith("daprd") and "--app-id" in argv:
            found[f"daprd-{argv[argv.index('--app-id') + 1]}"] = pid
        for app in JOBRELAY_APPS:
            if f"apps.{app}" in argv:
                found[app] = pid
    return found


def _wait_flowing(design: Design, timeout: float = 60.0) -> None:
    """Until one job goes all the way through (a healthy sidecar may not have bound its
    subscription yet)."""
    deadline = time.monotonic() + timeout
    body = {"task": "embed", "input": {"text": "warm-up"}}
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            job = client.post(design.submit_url, json=body).json()
            for _ in range(100):
                if client.get(design.status_url(job["id"])).status_code == 200:
                    return
                time.sleep(0.05)
    raise RuntimeError(f"{design.name}: no job went through in {timeout:.0f}s")
