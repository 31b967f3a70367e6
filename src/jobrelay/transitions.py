"""A job changed status: its one log line and its counters, wherever the change was written."""

from __future__ import annotations

from jobrelay import logs, metrics
from jobrelay.contract import JobRecord


def observe(record: JobRecord) -> None:
    """Call once per written transition, by the app that wrote it."""
    logs.transition(record)
    metrics.count_transition(record)
