"""How the CLI shows a job to a person: its status, and its result the way its task reads."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from jobrelay.contract import JobStatus, JobView

STATUS_STYLE = {
    JobStatus.QUEUED: "yellow",
    JobStatus.RUNNING: "cyan",
    JobStatus.SUCCEEDED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "magenta",
    JobStatus.EXPIRED: "magenta",
}
# A score bar this many characters wide at 100 %.
_BAR_WIDTH = 30


def status_text(status: JobStatus) -> Text:
    return Text(status.value, style=f"bold {STATUS_STYLE[status]}")


def job(view: JobView) -> RenderableType:
    """A panel: the job's facts, then its result or its error."""
    facts = Table.grid(padding=(0, 2))
    facts.add_row("status", status_text(view.status))
    facts.add_row("task", view.task)
    if view.input.text is not None:
        facts.add_row("input", _clip(view.input.text, 80))
    elif view.input.filename is not None:
        facts.add_row("input", f"{view.input.filename} ({view.input.content_type})")
    facts.add_row("attempts", str(view.attempts))
    if view.result is not None:
        facts.add_row("model", view.result.model)
    parts: list[RenderableType] = [facts]
    if view.result is not None:
        parts.append(output(view.result.output))
    if view.error is not None:
        parts.append(Text(f"{view.error.code}: {view.error.message}", style="red"))
    if not view.status.terminal:
        parts.append(Text(f"follow it: jobrelay watch {view.id}", style="dim"))
    return Panel(Group(*parts), title=f"job {view.id}", title_align="left", expand=False)


def output(result: dict[str, Any]) -> RenderableType:
    """A task's output the way it reads best; unknown shapes as JSON."""
    if isinstance(result.get("scores"), dict):
        return _scores(result)
    if "embedding" in result:
        return Text(f"embedding: {result.get('dimensions', len(result['embedding']))} dimensions")
    for field in ("summary", "description", "text"):
        if isinstance(result.get(field), str):
            return Text(result[field])
    return Text(json.dumps(result, indent=2, ensure_ascii=False))


def _scores(result: dict[str, Any]) -> RenderableType:
    chosen = set(result.get("labels") or [result.get("label")])
    scores: dict[str, float] = result["scores"]
    # Multi-label scores are standard deviations, not probabilities: bars are scaled to the top.
    top = max((abs(s) for s in scores.values()), default=1.0) or 1.0
    table = Table.grid(padding=(0, 2))
    for label, score in sorted(scores.items(), key=lambda item: -item[1]):
        bar = "█" * max(round(abs(score) / top * _BAR_WIDTH), 1)
        style = "bold green" if label in chosen else "dim"
        table.add_row(Text(label, style=style), Text(bar, style=style), f"{score:.4g}")
    return table


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
