"""Structured logs: one JSON object a line, with the job and trace of the line as fields.

Every line logged while a request or delivery works on a job (telemetry.bind_job) carries
`job_id` and `task`, and every line logged inside a span carries `trace_id` and `span_id`,
so `jq 'select(.job_id == "...")'` finds a job's whole story and the trace id leads from a
line to its trace. Job transitions are one line each (`transition`), with the new status.
"""

from __future__ import annotations

import atexit
import logging
import queue
from logging.handlers import QueueHandler, QueueListener

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from jobrelay.contract import JobRecord
from jobrelay.telemetry import bound_job

TRANSITIONS = logging.getLogger("jobrelay.jobs")


class JobAndTrace(logging.Filter):
    """Adds the bound job and the current span to each record, as fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = bound_job()
        if job is not None and not hasattr(record, "job_id"):
            record.job_id = job.id
            if job.task:
                record.task = job.task
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = f"{span.trace_id:032x}"
            record.span_id = f"{span.span_id:016x}"
        return True


class _Handoff(QueueHandler):
    """Hands each record to the writer thread, with what only this thread knows resolved
    (the message's arguments, the job and span: context variables, which another thread
    would not see)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.message = record.getMessage()
        record.msg, record.args = record.message, None
        return record


def handler() -> logging.Handler:
    """JSON lines on stderr, with the job and trace fields."""
    json_lines = logging.StreamHandler()
    json_lines.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    return json_lines


class _ClientRequestsOnly(logging.Filter):
    """Keeps uvicorn's access lines for what clients asked, not for what the sidecar
    delivers or probes: a job's deliveries are told by its transition lines, and a line per
    delivery would cost more than the delivery's own work."""

    _QUIET = ("/events/", "/dapr/", "/healthz", "/metrics")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        path = args[2] if isinstance(args, tuple) and len(args) > 2 else ""
        return not (isinstance(path, str) and path.startswith(self._QUIET))


def configure(level: str) -> None:
    """Every log line of the process as JSON (uvicorn's loggers propagate to the root),
    written by a thread of its own: a line is a blocking write to a pipe (the Dapr CLI's, a
    container runtime's), which would otherwise stall the event loop whenever the reader
    falls behind."""
    root = logging.getLogger()
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handoff = _Handoff(lines)
    handoff.addFilter(JobAndTrace())
    root.handlers[:] = [handoff]
    root.setLevel(level.upper())
    # A line per outgoing HTTP request (model calls, webhooks) says less than what the job
    # records of each call (model_calls, webhook_deliveries), at a line's cost each.
    for chatty in ("httpx", "httpx2"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    writer = QueueListener(lines, handler())
    writer.start()
    atexit.register(writer.stop)  # what is queued is written before the process ends
    logging.getLogger("uvicorn.access").addFilter(_ClientRequestsOnly())


def transition(record: JobRecord) -> None:
    """The one line of a job's change of status."""
    fields: dict[str, object] = {
        "job_id": record.id,
        "task": record.task,
        "status": record.status.value,
        "seq": record.seq,
        "attempt": record.attempts,
    }
    if record.queue_seconds is not None:
        fields["queue_seconds"] = round(record.queue_seconds, 6)
    if record.model_seconds is not None:
        fields["model_seconds"] = round(record.model_seconds, 6)
    if record.error is not None:
        fields["error_code"] = record.error.code
    TRANSITIONS.info("job %s", record.status.value, extra=fields)
