"""Which failures are worth retrying, and what a failed job tells its client."""

from __future__ import annotations

import openai

from apps.worker.inputs import UnreadableInput
from apps.worker.models import CapabilityUnavailable
from jobrelay.contract import JobError


def describe(exc: BaseException) -> JobError:
    """The JobError for `exc`; `retryable` decides between a retry and failing at once.

    Rate limits, timeouts, unreachable endpoints and 5xx are the model backend's passing
    trouble: retried. Any other 4xx is the provider refusing this input: retrying would get
    the same answer, so the job fails at once with the provider's reason.
    """
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
        case CapabilityUnavailable():
            return JobError(code="capability_unavailable", message=str(exc), retryable=False)
        case UnreadableInput():
            return JobError(code="invalid_input", message=str(exc), retryable=False)
    return JobError(code="internal_error", message=f"{type(exc).__name__}: {exc}", retryable=False)


def _reason(exc: openai.APIStatusError) -> str:
    return f"model answered {exc.status_code}: {exc.message}"
