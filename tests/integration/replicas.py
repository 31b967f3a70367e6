"""More instances of an app of a running test stack (tests/integration/stack.py): a second
status replica, say, with its own real sidecar, started the way the stack starts its apps
(`dapr run -f`) on the same components, servers and settings."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from kafka.admin import KafkaAdminClient

from tests.integration.stack import (
    Ports,
    Stack,
    dapr_runtime,
    interrupt,
    otel_env,
    run_file,
    security_env,
)
from tests.ports import free_port

log = logging.getLogger(__name__)


@dataclass
class Replica:
    """One more instance of an app of a running stack, with a sidecar of its own."""

    app: str
    ports: Ports
    process: subprocess.Popen[bytes]
    log: Path
    group_members: int | None  # on Kafka: the members of its app's group before it joined

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.app}"


def start_replica(stack: Stack, app: str, name: str, timeout: float = 120.0) -> Replica:
    """A second `app` (same app id, same components and settings) beside `stack`'s, launched
    the same way (`dapr run -f`); stop it with stop_replica."""
    assert stack.servers is not None
    assert stack.otlp is not None
    before = _kafka_group(stack, app)
    group_members = before[1] if before is not None else None
    ports = Ports(free_port(), free_port(), free_port())
    (stack.workdir / name).mkdir()
    runtime = dapr_runtime()
    env = {**os.environ, "DAPR_RUNTIME_PATH": str(runtime), **stack.servers.daprd_env}
    env.update(security_env())
    env.update(otel_env(stack.otlp.endpoint))
    log = stack.workdir / f"dapr-run-{name}.log"
    replica_run = run_file(stack, {app: ports}, name)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(runtime / ".dapr" / "bin" / "dapr"), "run", "-f", str(replica_run)],
            cwd=stack.workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    replica = Replica(app, ports, process, log, group_members)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_replica(replica, stack)
                raise RuntimeError(f"replica {name} did not start:\n{log.read_text()[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{replica.url}/healthz").status_code == 200:
                    return replica
            time.sleep(0.2)


def stop_replica(replica: Replica, stack: Stack) -> None:
    """Stop `replica`, and on Kafka wait until its consumer group is back to the members it
    had before the replica joined (and stable): until then the partitions the replica held
    wait out a rebalance, up to the component's sessionTimeout (30 s), even after a clean
    exit (seen: webhooks 30 s late in the tests that followed), and the rest of the session
    must not pay for it."""
    interrupt(replica.process)
    if replica.group_members is None:
        return
    start = time.monotonic()
    while (state := _kafka_group(stack, replica.app)) != ("Stable", replica.group_members):
        if time.monotonic() - start > 120:
            raise RuntimeError(f"Kafka group {replica.app!r} did not settle: {state}")
        time.sleep(1)
    log.info(
        "Kafka group %r settled %.1f s after the replica stopped",
        replica.app,
        time.monotonic() - start,
    )


def _kafka_group(stack: Stack, group: str) -> tuple[str, int] | None:
    """(state, members) of a consumer group on the stack's Kafka; None on another broker."""
    assert stack.servers is not None
    brokers = stack.servers.daprd_env.get("JOBRELAY_KAFKA_BROKERS")
    if brokers is None:
        return None
    admin = KafkaAdminClient(bootstrap_servers=brokers)
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    return described["group_state"], len(described["members"])
