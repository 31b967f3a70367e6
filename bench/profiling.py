"""CPU profiles of running apps with py-spy (sampling from outside, no code change), boiled
down to the functions that hold the most samples: where intake's and worker's time goes."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"


@dataclass(frozen=True)
class Profile:
    app: str
    samples: int
    inclusive: list[tuple[str, float]]  # (function, % of samples with it on the stack)
    leaf: list[tuple[str, float]]  # (function, % of samples where it was running)
    raw: Path


def record(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `seconds` at 100 Hz; wait on the result.

    `--gil`: only the thread holding the GIL is sampled. Threads parked in a pool (gRPC's,
    anyio's) wait in `Condition.wait`, which py-spy does not count as idle, and would
    otherwise fill the profile with waiting instead of Python CPU time.
    """
    argv = [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(seconds), "--gil"]
    argv += ["--rate", "100", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(  # noqa: S603 (our own argv)
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _frame(frame: str) -> str:
    # py-spy writes "function (path/to/module.py:line)"; the line and the folders are noise
    # here, the module and function are what a reader looks for.
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":")[0]
    return f"{name} ({module})" if module else name


def summarize(app: str, raw: Path, top: int = 12) -> Profile:
    """Collapsed stacks ("a;b;c count" per line) to inclusive and leaf percentages."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        leaf[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if total == 0:
        return Profile(app, 0, [], [], raw)

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100 * n / total) for name, n in counter.most_common(top)]

    # Frames on every stack (the event loop, the thread's entry) say nothing: skip them.
    interesting = Counter({k: v for k, v in inclusive.items() if v < 0.9 * total})
    return Profile(app, total, share(interesting), share(leaf), raw)
