"""What a failed job tells its client: a stable code, the reason, and whether to retry."""

from __future__ import annotations

import grpc
import openai
from dapr.clients.exceptions import DaprInternalError

from apps.worker.gateway import CapabilityUnavailable, ModelBudgetSpent
from apps.worker.materialize import UnreadableInput
from apps.worker.output_check import CheckExhausted
from apps.worker.reading import DocumentRefused
from apps.worker.streaming import StreamInterrupted
from apps.worker.tasks.extract import InvalidOutput
from jobrelay.contract import JobError
from jobrelay.limits import LimitReached

# jobrelay's own failures: (exception type, code, retryable).
_OWN: tuple[tuple[type[BaseException], str, bool], ...] = (
    # The state store or broker behind the sidecar is down (say, Redis restarting): nothing
    # is wrong with the job, so it goes back for a later delivery.
    (DaprInternalError, "store_unavailable", True),
    (grpc.RpcError, "store_unavailable", True),
    (LimitReached, "model_rate_limited", True),
    (CapabilityUnavailable, "capability_unavailable", False),
    (ModelBudgetSpent, "model_call_budget_exhausted", False),
    (InvalidOutput, "invalid_output", False),
    # The same schema would exhaust the check again: failed, not retried.
    (CheckExhausted, "schema_too_complex", False),
    (UnreadableInput, "invalid_input", False),
    # Retried as a new attempt, whose text streams afresh after its own `running` event.
    (StreamInterrupted, "model_stream_interrupted", True),
)


def describe(exc: BaseException) -> JobError:
    """The JobError for `exc`. `retryable` sends the job back to the broker for a later
    delivery (after the worker's own retries and fallbacks, apps/worker/retry.py, ran out);
    otherwise the job fails now."""
    if isinstance(exc, openai.OpenAIError) and (model := _model_error(exc)) is not None:
        return model
    if isinstance(exc, DocumentRefused):
        # Its own code says which limit or defect (apps/worker/reading/errors.py); the same
        # bytes would fail the same way again, so it is never retried.
        return JobError(code=exc.code, message=str(exc), retryable=False)
    for kind, code, retryable in _OWN:
        if isinstance(exc, kind):
            return JobError(code=code, message=str(exc), retryable=retryable)
    return JobError(code="internal_error", message=f"{type(exc).__name__}: {exc}", retryable=False)


def _model_error(exc: openai.OpenAIError) -> JobError | None:
    """Rate limits, timeouts, unreachable endpoints and 5xx are the backend's passing
    trouble (retried); any other 4xx is the provider refusing this input (not retried)."""
    match exc:
        case openai.RateLimitError():
            return JobError(code="model_rate_limited", message=_reason(exc), retryable=True)
        case openai.APITimeoutError():
            return JobError(
                code="model_timeout", message="the model did not answer in time", retryable=True
            )
        case openai.APIConnectionError():
            return JobError(
                code="model_unavailable", message=f"model unreachable: {exc}", retryable=True
            )
        case openai.InternalServerError():
            return JobError(code="model_error", message=_reason(exc), retryable=True)
        case openai.APIStatusError():
            return JobError(code="model_rejected", message=_reason(exc), retryable=False)
    return None


def _reason(exc: openai.APIStatusError) -> str:
    return f"model answered {exc.status_code}: {exc.message}"
