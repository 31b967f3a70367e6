"""The local servers behind a component profile, private to one test session.

scripts/profile.sh starts them (the same script `make run` uses), on free ports and in the
session's own folders, so the tests run beside a developer's `make run`; they are stopped
afterwards, and nothing else is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "profile.sh"
# Profiles whose broker and store run on this machine; `azure` is checked offline only.
RUNNABLE = ("redis", "rabbitmq", "kafka")
# Every port any profile's servers listen on (scripts/profile.sh, rabbitmq.sh, kafka.sh).
_PORT_SETTINGS = (
    "JOBRELAY_REDIS_PORT",
    "JOBRELAY_POSTGRES_PORT",
    "JOBRELAY_RABBITMQ_PORT",
    "RABBITMQ_DIST_PORT",
    "RABBITMQ_EPMD_PORT",
    "RABBITMQ_CTL_PORT",
    "JOBRELAY_KAFKA_PORT",
    "KAFKA_CONTROLLER_PORT",
)


def selected() -> list[str]:
    """The profiles to test: JOBRELAY_TEST_PROFILES (e.g. "redis rabbitmq"), else redis."""
    names = os.environ.get("JOBRELAY_TEST_PROFILES", "redis").replace(",", " ").split()
    unknown = set(names) - set(RUNNABLE)
    if unknown:
        raise ValueError(f"JOBRELAY_TEST_PROFILES: no runnable profile {sorted(unknown)}")
    return names


def go_pass() -> bool:
    """Whether the `polyglot` tests run again with the Go worker on the redis profile: when
    redis is among the profiles tested, unless JOBRELAY_TEST_GO_WORKER=0."""
    wanted = os.environ.get("JOBRELAY_TEST_GO_WORKER", "1") != "0"
    return wanted and "redis" in selected()


@dataclass
class Servers:
    profile: str
    workdir: Path
    script_env: dict[str, str]
    daprd_env: dict[str, str]  # what the profile's components read through envRef


def up(profile: str, workdir: Path) -> Servers:
    env = {**os.environ, **{name: str(free_port()) for name in _PORT_SETTINGS}}
    # PostgreSQL runs as the postgres user when we are root, and that user cannot enter the
    # pytest temp folder (mode 700): its data goes in a folder of its own under /tmp.
    env["JOBRELAY_POSTGRES_DIR"] = tempfile.mkdtemp(prefix="jobrelay-pg-")
    os.chmod(env["JOBRELAY_POSTGRES_DIR"], 0o755)  # noqa: S103 (only traversal; data is 700)
    servers = Servers(profile, workdir / "servers", env, {})
    out = subprocess.run(
        [str(SCRIPT), "up", profile, str(servers.workdir)],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        servers.daprd_env[key] = value
    return servers


def down(servers: Servers) -> None:
    subprocess.run(
        [str(SCRIPT), "down", servers.profile, str(servers.workdir)],
        env=servers.script_env,
        check=False,
    )
    shutil.rmtree(servers.script_env["JOBRELAY_POSTGRES_DIR"], ignore_errors=True)
