"""The span and metrics of one model call, in OpenTelemetry's GenAI semantic conventions.

The span names the operation and model (`chat SmolLM2-135M-Instruct`) and carries the token
counts the model reported. Prompts and answers are never recorded: they are the client's
data, and a trace backend is no place to keep them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from apps.worker.profiles import ModelProfile
from jobrelay import metrics
from jobrelay.task_catalog import Capability
from jobrelay.telemetry import bound_job

_tracer = trace.get_tracer(__name__)


class ModelSpan:
    """Records what the model answered on the call's span and in the token counters."""

    def __init__(self, span: trace.Span, profile: ModelProfile, task: str) -> None:
        self._span, self._profile, self._task = span, profile, task

    def answered(self, answer: object) -> None:
        model = getattr(answer, "model", None) or self._profile.model
        self._span.set_attribute("gen_ai.response.model", model)
        choices = getattr(answer, "choices", None)
        if choices:
            reasons = [str(c.finish_reason) for c in choices if getattr(c, "finish_reason", None)]
            self._span.set_attribute("gen_ai.response.finish_reasons", reasons)
        usage = getattr(answer, "usage", None)
        if usage is None:
            return
        tokens = {
            "input": getattr(usage, "prompt_tokens", None),
            "output": getattr(usage, "completion_tokens", None),
        }
        for kind, count in tokens.items():
            if isinstance(count, int):
                self._span.set_attribute(f"gen_ai.usage.{kind}_tokens", count)
                metrics.TOKENS.labels(self._task, model, kind).inc(count)


def _task() -> str:
    job = bound_job()
    return job.task if job and job.task else "unknown"


def count_retry(profile: ModelProfile) -> None:
    """Another try on `profile` after a retryable failure (apps/worker/retry.py)."""
    metrics.MODEL_RETRIED.labels(_task(), profile.name).inc()


@functools.cache
def _attributes(profile: ModelProfile, operation: str) -> dict[str, str | int]:
    """The call span's attributes: the same for every call to a profile, so made once."""
    url = urlsplit(profile.base_url)
    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": "azure.ai.openai" if profile.kind == "azure" else "openai",
        "gen_ai.request.model": profile.model,
        "jobrelay.model.profile": profile.name,
    }
    if url.hostname:
        attributes["server.address"] = url.hostname
    if url.port:
        attributes["server.port"] = url.port
    return attributes


@contextmanager
def model_call(profile: ModelProfile, capability: Capability) -> Iterator[ModelSpan]:
    operation = "embeddings" if capability is Capability.EMBEDDINGS else "chat"
    attributes = _attributes(profile, operation)
    task = _task()
    in_flight = metrics.MODEL_IN_FLIGHT.labels(profile.name)
    outcome, started = "error", time.monotonic()
    in_flight.inc()
    with _tracer.start_as_current_span(
        f"{operation} {profile.model}", kind=SpanKind.CLIENT, attributes=attributes
    ) as span:
        try:
            yield ModelSpan(span, profile, task)
            outcome = "ok"
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            span.set_attribute("error.type", str(status) if status else type(exc).__qualname__)
            raise
        finally:
            in_flight.dec()
            metrics.MODEL_CALL.labels(task, profile.name, profile.model, outcome).observe(
                time.monotonic() - started
            )
