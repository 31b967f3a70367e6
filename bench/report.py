"""docs/benchmarks.md: the machine's facts, then one section per scenario, then the targets
with the measured value beside each. Written whole at the end of a run."""

from __future__ import annotations

import platform
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.stats import Figure


@dataclass
class Runs:
    """Every repeated measurement, by "scenario/design/metric"."""

    values: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, key: str, value: float) -> None:
        self.values[key].append(value)

    def fig(self, key: str) -> Figure:
        return Figure.of(self.values.get(key, []))


@dataclass
class Section:
    title: str
    text: str
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        parts = [f"## {self.title}", "", self.text.strip(), ""]
        if self.header:
            parts.append("| " + " | ".join(self.header) + " |")
            parts.append("|" + "|".join(" --- " for _ in self.header) + "|")
            parts += ["| " + " | ".join(row) + " |" for row in self.rows]
            parts.append("")
        parts += [f"- {note}" for note in self.notes]
        if self.notes:
            parts.append("")
        return "\n".join(parts)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _git_commit(root: Path) -> str:
    out = subprocess.run(  # noqa: S603
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(  # noqa: S603
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def machine_facts(
    root: Path,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    seconds: float,
    repeats: int,
    redis_version: str,
) -> Section:
    import os

    rows = [
        ["when", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")],
        ["commit", _git_commit(root)],
        ["CPU", f"{_cpu_model()}, {os.cpu_count()} cores"],
        ["memory", f"{_memory_gib():.1f} GiB"],
        ["OS", f"{platform.system()} {platform.release()}"],
        ["Python", platform.python_version()],
        ["daprd / SDK", f"{_version('dapr')} SDK; daprd from scripts/versions.sh"],
        ["Redis", redis_version],
        [
            "Celery / FastAPI / uvicorn",
            f"{_version('celery')} / {_version('fastapi')} / {_version('uvicorn')}",
        ],
        ["load average (1/5/15 min) before", " / ".join(f"{v:.2f}" for v in load_before)],
        ["load average (1/5/15 min) after", " / ".join(f"{v:.2f}" for v in load_after)],
        [
            "jobrelay as measured",
            "the defaults of `make run`: publish then store, encrypted state, quotas on "
            "(limits above the load), tracing with no exporter (spans not recorded)",
        ],
        ["repeats per figure", str(repeats)],
        ["whole run", f"{seconds / 60:.1f} min"],
    ]
    text = (
        "Every figure is the median of the repeated runs, with the lowest and highest run in "
        "brackets. The machine is shared with other engineers' test runs, so the spread is "
        "part of the result: read the load averages below before comparing two reports. The "
        "load generator (an asyncio + httpx driver, bench/load.py) runs on the same two cores "
        "as every design it measures."
    )
    return Section("The machine and the run", text, ["", ""], rows)


# What follows this line in the report is written by other suites (the fairness figures of
# tests/integration/test_fairness.py) and is kept as it is when the bench rewrites the rest.
KEPT_MARKER = "<!-- kept by make bench: written by the test suites -->"


def write(path: Path, intro: str, sections: list[Section]) -> None:
    body = "\n".join([intro.strip(), "", *(s.markdown() for s in sections)])
    old = path.read_text() if path.exists() else ""
    kept = old[old.index(KEPT_MARKER) :] if KEPT_MARKER in old else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body.rstrip() + "\n" + ("\n" + kept.rstrip() + "\n" if kept else ""))


def replace_section(path: Path, section: Section) -> None:
    """`section` in place of the one with its title in `path` (appended if there is none):
    for a scenario run alone, which must not drop the other scenarios' figures."""
    text = path.read_text() if path.exists() else ""
    heading = f"## {section.title}"
    lines = text.rstrip().splitlines()
    if heading in lines:
        start = lines.index(heading)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        lines[start:end] = [*section.markdown().rstrip().splitlines(), ""]
    else:
        lines += ["", *section.markdown().rstrip().splitlines()]
    path.write_text("\n".join(lines).rstrip() + "\n")
