"""The real stack as separate processes that a chaos test can kill and restart one by one.

`dapr run -f` (tests/integration/stack.py) does not restart an app that died, and kills the
whole run with it; here every app and its own real `daprd` is a process of its own, started
with the flags the Dapr CLI gives daprd (read off `ps` of a `make run`), so a test can
SIGKILL the worker and bring it back while its sidecar lives on, or the other way round.

- Redis: a private one on a free port, started by scripts/redis.sh (AOF, fsync every second).
- model: the built-in local model (apps/model), with no sidecar: nothing in it talks to Dapr.
- the worker calls it through the flaky-model test double (tests/doubles/flaky_model.py),
  which also counts the calls each job's text gets.
- intake, worker, status: each app process beside its own daprd.

Components are the redis profile's files, copied with `processingTimeout` and
`redeliverInterval` shortened (CHAOS_PROCESSING_TIMEOUT, CHAOS_REDELIVER_MS): a message whose
consumer died is handed out again after processingTimeout, and waiting the production 300 s
per crash would not fit in CI. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.doubles import flaky_model
from tests.integration.stack import STATE_KEY, WEBHOOK_SECRET, dapr_runtime, go_worker_binary
from tests.ports import free_port

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
SIDECAR_APPS = ("intake", "worker", "status")
# Shortened from the profile's 300 s / 30000 ms so that a crash is recovered from in tens of
# seconds; still above any model call the chaos tests make, so no live call is redelivered.
CHAOS_PROCESSING_TIMEOUT = os.environ.get("JOBRELAY_CHAOS_PROCESSING_TIMEOUT", "30s")
CHAOS_REDELIVER_MS = os.environ.get("JOBRELAY_CHAOS_REDELIVER_MS", "2000")
# The worker's claim lease and how long it holds a duplicate delivery of a running job, scaled
# down with processingTimeout and in the same order (lease < hold < processingTimeout), so a
# held copy is never itself redelivered. Settings the worker must offer (see test_worker_crashes).
LEASE_SETTINGS = {
    "JOBRELAY_WORKER_CLAIM_LEASE_SECONDS": os.environ.get("JOBRELAY_CHAOS_LEASE_SECONDS", "12"),
    "JOBRELAY_WORKER_DUPLICATE_HOLD_SECONDS": os.environ.get("JOBRELAY_CHAOS_HOLD_SECONDS", "20"),
}
# How long a worker waits for the record of a message that came first (intake publishes, then
# stores) before it fences the job: shortened from the production 30 s so that the crash-point
# cases (tests/chaos/test_intake_crash.py) see the fence within seconds. Still far above the
# milliseconds a record takes to follow its message.
ARRIVAL_GRACE_SECONDS = os.environ.get("JOBRELAY_CHAOS_ARRIVAL_GRACE_SECONDS", "4")
# The most model calls one job may make in the poison case, which runs the worker with it
# (tests/chaos/test_infrastructure_faults.py): below the 33 calls the delivery policy spends
# on the way to the dead letter, so the budget, not the policy, is what ends the job. Every
# other case runs with the production budget (36), which a 30 s model outage must not use up.
POISON_MODEL_CALL_BUDGET = int(os.environ.get("JOBRELAY_CHAOS_MODEL_CALL_BUDGET", "12"))
# What dapr.yaml gives the worker's sidecar (appMaxConcurrency); the others get the CLI's -1.
_APP_MAX_CONCURRENCY = {"worker": 32}
_STARTUP_SECONDS = 90.0


def _python_env() -> dict[str, str]:
    """The environment for an app: this tree's code first, so the suite always tests the
    tree it lives in (also when copied beside another checkout, e.g. to test a commit)."""
    tree = [ROOT / "src", ROOT / "packages" / "contract" / "src", ROOT]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, tree))}


@dataclass
class Proc:
    """One process of the stack, restartable with the same command line."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            out.write(f"\n---- start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group: a kill reaches it (and any child) and nothing else.
                start_new_session=True,
            )
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: signal.Signals = signal.SIGKILL, wait: float = 30.0) -> None:
        """Signal the process group we started, and reap it."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@dataclass
class Launcher:
    workdir: Path
    redis_port: int = field(default_factory=free_port)
    app_ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    proxy: flaky_model.Running | None = None

    # -- addresses -------------------------------------------------------------------------

    def url(self, app: str) -> str:
        return f"http://127.0.0.1:{self.app_ports[app]}"

    @property
    def redis_dir(self) -> Path:
        return self.workdir / "redis"

    @property
    def double(self) -> flaky_model.FlakyModel:
        assert self.proxy is not None
        return self.proxy.double

    # -- start and stop --------------------------------------------------------------------

    def start(self) -> None:
        self.redis_start()
        components = self._components()
        runtime = dapr_runtime()
        self.app_ports = {app: free_port() for app in ("model", *SIDECAR_APPS)}
        self._add_model()
        self.procs["model"].start()
        self.wait_healthy("model")
        self.proxy = flaky_model.start(f"{self.url('model')}/v1")
        for app in SIDECAR_APPS:
            self._add_app_and_sidecar(app, runtime, components)
        for app in SIDECAR_APPS:
            self.procs[f"{app}-daprd"].start()
            self.procs[app].start()
        for app in SIDECAR_APPS:
            self.wait_healthy(app)

    def stop(self) -> None:
        # Apps before sidecars, so nothing logs a sidecar vanishing under it.
        for name in [*SIDECAR_APPS, "model", *(f"{a}-daprd" for a in SIDECAR_APPS)]:
            if name in self.procs:
                self.procs[name].kill(signal.SIGTERM, wait=15)
        if self.proxy is not None:
            self.proxy.stop()
        self.redis_stop()

    def restart(self, name: str, wait_healthy: bool = True) -> None:
        """Start `name` again (after a kill) with the same command line and ports."""
        proc = self.procs[name]
        assert not proc.alive, f"{name} is still running"
        proc.start()
        app = name.removesuffix("-daprd")
        if wait_healthy:
            self.wait_healthy(app)

    @contextlib.contextmanager
    def go_worker(self) -> Iterator[None]:
        """The Go worker (apps/worker-go) in place of the Python one, beside the same
        sidecar, with the same settings and port; the Python one is back afterwards.

        The Go worker's log is a file of its own, and it is `procs["worker"]` meanwhile, so
        what the observers read of "the worker" (tests/chaos/observe.py) is the Go one's."""
        python = self.procs["worker"]
        python.kill(signal.SIGTERM, wait=30)
        env = {**python.env, "JOBRELAY_WORKER_MODELS_FILE": str(ROOT / "config" / "models.yaml")}
        go = Proc("worker", [str(go_worker_binary())], env, self.workdir / "worker-go.log")
        self.procs["worker"] = go
        try:
            go.start()
            self.wait_healthy("worker")
            yield
        finally:
            go.kill(signal.SIGTERM, wait=30)
            self.procs["worker"] = python
            python.start()
            self.wait_healthy("worker")

    @contextlib.contextmanager
    def app_settings(self, app: str, **env: str) -> Iterator[None]:
        """Run `app` (not its sidecar) with `env` added for the block, then as it was."""
        proc = self.procs[app]
        usual = proc.env
        proc.kill(signal.SIGTERM, wait=15)
        proc.env = {**usual, **env}
        proc.start()
        try:
            self.wait_healthy(app)
            yield
        finally:
            proc.kill(signal.SIGTERM, wait=15)
            proc.env = usual
            proc.start()
            self.wait_healthy(app)

    def wait_healthy(self, app: str, timeout: float = _STARTUP_SECONDS) -> float:
        """Seconds until `app`'s /healthz answers 200 (for a sidecar app: its daprd too)."""
        started = time.monotonic()
        with httpx.Client(timeout=2) as client:
            while True:
                for name in (app, f"{app}-daprd"):
                    proc = self.procs.get(name)
                    if proc is not None and not proc.alive:
                        raise RuntimeError(f"{name} exited:\n{proc.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url(app)}/healthz").status_code == 200:
                        return time.monotonic() - started
                if time.monotonic() - started > timeout:
                    raise RuntimeError(
                        f"{app} not healthy in {timeout:.0f}s:\n{self.procs[app].tail()}"
                    )
                time.sleep(0.2)

    # -- Redis -----------------------------------------------------------------------------

    def redis_start(self) -> None:
        subprocess.run(
            [
                str(ROOT / "scripts" / "redis.sh"),
                "start",
                str(self.redis_port),
                str(self.redis_dir),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def redis_stop(self) -> None:
        """A graceful stop: SHUTDOWN fsyncs the AOF before Redis exits."""
        subprocess.run(
            [str(ROOT / "scripts" / "redis.sh"), "stop", str(self.redis_port), str(self.redis_dir)],
            check=False,
        )
        deadline = time.monotonic() + 20
        while self.redis("PING", check=False) == "PONG" and time.monotonic() < deadline:
            time.sleep(0.1)

    def redis(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis_port), "--no-raw", *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip()

    def redis_raw(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis_port), "--raw", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout

    # -- the model double ------------------------------------------------------------------

    def model_down(self) -> None:
        """The model backend refuses connections (the proxy stops listening)."""
        assert self.proxy is not None
        self.proxy.stop()

    def model_up(self) -> None:
        assert self.proxy is not None
        self.proxy.restart()

    # -- building the processes ------------------------------------------------------------

    def _components(self) -> list[Path]:
        """The redis profile and common/, with the redelivery timing shortened (see above)."""
        target = self.workdir / "components"
        shutil.rmtree(target, ignore_errors=True)
        profile = target / "redis"
        profile.mkdir(parents=True)
        for source in sorted((ROOT / "components" / "redis").glob("*.yaml")):
            doc: dict[str, Any] = yaml.safe_load(source.read_text())
            if doc["metadata"]["name"] == "pubsub":
                for item in doc["spec"]["metadata"]:
                    if item["name"] == "processingTimeout":
                        item["value"] = CHAOS_PROCESSING_TIMEOUT
                    elif item["name"] == "redeliverInterval":
                        item["value"] = CHAOS_REDELIVER_MS
            (profile / source.name).write_text(yaml.safe_dump(doc, sort_keys=False))
        return [profile, ROOT / "components" / "common"]

    def _add_model(self) -> None:
        env = {
            **_python_env(),
            "APP_PORT": str(self.app_ports["model"]),
            # Only the embedder the chaos jobs use: the chat model would cost start-up time
            # and memory for nothing.
            "JOBRELAY_MODEL_EMBEDDERS": "all-MiniLM-L6-v2",
            "JOBRELAY_MODEL_CHAT": "false",
            "JOBRELAY_MODEL_LOG_LEVEL": "WARNING",
        }
        self.procs["model"] = Proc(
            "model", [sys.executable, "-m", "apps.model"], env, self.workdir / "model.log"
        )

    def _add_app_and_sidecar(self, app: str, runtime: Path, components: list[Path]) -> None:
        http, grpc, internal, metrics = (free_port() for _ in range(4))
        assert self.proxy is not None
        app_env = {
            **_python_env(),
            # What the Dapr CLI sets for an app it launches.
            "APP_ID": app,
            "APP_PORT": str(self.app_ports[app]),
            "APP_PROTOCOL": "http",
            "DAPR_HTTP_PORT": str(http),
            "DAPR_GRPC_PORT": str(grpc),
            "JOBRELAY_INTAKE_STATUS_BASE_URL": self.url("status"),
            "JOBRELAY_STATUS_PUBLIC_BASE_URL": self.url("status"),
            "JOBRELAY_WORKER_MODEL_BASE_URL": self.proxy.url,
            "JOBRELAY_STATUS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            **(LEASE_SETTINGS if app == "worker" else {}),
            "JOBRELAY_WORKER_ARRIVAL_GRACE_SECONDS": ARRIVAL_GRACE_SECONDS,
            # Intake gives up storing a record well inside the worker's grace.
            "JOBRELAY_INTAKE_STORE_WINDOW_SECONDS": "1",
        }
        self.procs[app] = Proc(
            app, [sys.executable, "-m", f"apps.{app}"], app_env, self.workdir / f"{app}.log"
        )
        argv = [
            str(runtime / ".dapr" / "bin" / "daprd"),
            "--config", str(ROOT / "components" / "config.yaml"),
            "--app-protocol", "http",
            "--log-level", "info",
            "--app-max-concurrency", str(_APP_MAX_CONCURRENCY.get(app, -1)),
            # The CLI passes localhost:50005 here; dapr.yaml asks for none (no actors), which
            # also spares the log a placement error every second.
            "--placement-host-address", "",
            *(arg for path in components for arg in ("--resources-path", str(path))),
            "--dapr-http-max-request-size", "-1",
            "--dapr-http-read-buffer-size", "-1",
            "--app-id", app,
            "--app-port", str(self.app_ports[app]),
            "--dapr-http-port", str(http),
            "--dapr-grpc-port", str(grpc),
            "--profile-port", "-1",
            "--metrics-port", str(metrics),
            "--dapr-internal-grpc-port", str(internal),
            # As dapr.yaml asks for the worker: a sidecar whose app is down stops taking
            # messages rather than spending their retries on it.
            *(
                ("--enable-app-health-check", "--app-health-check-path", "/healthz",
                 "--app-health-probe-interval", "1", "--app-health-threshold", "2")
                if app == "worker" else ()
            ),
        ]  # fmt: skip
        # daprd reads the Redis address through the components' envRef, from its own
        # environment (the run file's env: would reach only the app).
        daprd_env = {
            **os.environ,
            "JOBRELAY_REDIS_HOST": f"127.0.0.1:{self.redis_port}",
            "JOBRELAY_KEY_STATE": STATE_KEY,
        }
        self.procs[f"{app}-daprd"] = Proc(
            f"{app}-daprd", argv, daprd_env, self.workdir / f"{app}-daprd.log"
        )
