"""What a failed job tells its client: a stable code, the reason, and whether to retry."""

from __future__ import annotations

import openai

from apps.worker.gateway import CapabilityUnavailable
from apps.worker.inputs import UnreadableInput
from apps.worker.limits import LimitWait
from apps.worker.tasks.extract import InvalidOutput
from jobrelay.contract import JobError


def describe(exc: BaseException) -> JobError:
    """The JobError for `exc`. `retryable` sends the job back to the broker for a later
    delivery (after the worker's own retries and fallbacks, apps/worker/retry.py, ran out);
    otherwise the job fails now."""
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
        case LimitWait():
            return JobError(code="model_rate_limited", message=str(exc), retryable=True)
        case CapabilityUnavailable():
            return JobError(code="capability_unavailable", message=str(exc), retryable=False)
        case InvalidOutput():
            return JobError(code="invalid_output", message=str(exc), retryable=False)
        case UnreadableInput():
            return JobError(code="invalid_input", message=str(exc), retryable=False)
    return JobError(code="internal_error", message=f"{type(exc).__name__}: {exc}", retryable=False)


def _reason(exc: openai.APIStatusError) -> str:
    return f"model answered {exc.status_code}: {exc.message}"
