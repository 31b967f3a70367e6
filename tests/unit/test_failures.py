import httpx2
import openai
import pytest
from dapr.clients.exceptions import DaprInternalError

from apps.worker.failures import describe

_REQUEST = httpx2.Request("POST", "http://model.test/v1/embeddings")


def _status_error(cls: type[openai.APIStatusError], status: int) -> openai.APIStatusError:
    response = httpx2.Response(status, request=_REQUEST, json={"error": {"message": "nope"}})
    return cls("nope", response=response, body=None)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (_status_error(openai.RateLimitError, 429), "model_rate_limited"),
        (_status_error(openai.InternalServerError, 503), "model_error"),
        (openai.APITimeoutError(request=_REQUEST), "model_timeout"),
        (openai.APIConnectionError(request=_REQUEST), "model_unavailable"),
    ],
)
def test_passing_trouble_of_the_backend_is_retried(exc: Exception, code: str) -> None:
    error = describe(exc)
    assert error.retryable
    assert error.code == code


@pytest.mark.parametrize("cls", [openai.BadRequestError, openai.NotFoundError])
def test_a_provider_refusal_fails_at_once_with_its_reason(cls: type[openai.APIStatusError]) -> None:
    error = describe(_status_error(cls, 400 if cls is openai.BadRequestError else 404))
    assert not error.retryable
    assert error.code == "model_rejected"
    assert "nope" in error.message


def test_a_bug_is_not_retried() -> None:
    error = describe(ZeroDivisionError("division by zero"))
    assert error.code == "internal_error"
    assert not error.retryable
    assert "ZeroDivisionError" in error.message


def test_a_store_outage_during_a_task_is_retried() -> None:
    error = describe(DaprInternalError("failed saving state: connection refused"))
    assert error.code == "store_unavailable"
    assert error.retryable
