"""Processes the benchmark starts: each in a session of its own, so stopping it reaches its
children and nothing else; and what they cost, read from /proc (CPU seconds, resident memory).

Only processes started here are ever signalled, by the process group of the one we launched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, grace: float = 20.0) -> None:
        """SIGINT (a Dapr CLI stops its apps and sidecars on it), then SIGKILL the group."""
        if self.process.poll() is None:
            pgid = os.getpgid(self.process.pid)
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def launch(
    name: str, argv: Sequence[str], logdir: Path, env: Mapping[str, str], cwd: Path | None = None
) -> Started:
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 (our own argv, never a shell)
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Started(name, process, log)


def wait_http(url: str, started: Started, timeout: float = 90.0) -> None:
    """Until `url` answers 200; fails early if the process died."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if started.process.poll() is not None:
                raise RuntimeError(f"{started.name} exited early:\n{started.tail()}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.2)
    raise RuntimeError(f"{started.name}: {url} not healthy in {timeout:.0f}s:\n{started.tail()}")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name is in parentheses and may hold spaces; fields count from after it.
    return text[text.rindex(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """`root` and every process below it, now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (0 once it is gone)."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_BYTES
    except OSError:
        return 0


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen
