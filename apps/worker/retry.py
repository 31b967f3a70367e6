"""How the worker reacts to a failed model call, in one place.

- Rate limits (429), server errors (5xx), timeouts and unreachable endpoints are the
  backend's passing trouble: retried on the same model with exponential backoff and jitter,
  after the `Retry-After` the backend asked for when it gave one (clamped), and never past the
  job's deadline; then the next model of the task's fallback list is tried.
- An input too long for the model's context goes straight to the next model.
- Any other 4xx, and a content rejection, is the provider refusing this input: the job fails
  at once with the provider's reason (retrying would get the same answer).

Dapr's resiliency policy cannot read a model's Retry-After, which is why this lives here and
not in components/common/resiliency.yaml (that one redelivers whole jobs, more coarsely).
"""

from __future__ import annotations

import email.utils
import math
import random
from datetime import UTC, datetime
from enum import StrEnum

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from apps.worker.profiles import ModelProfile

# A backend asking for more than this is treated as asking for this: the job's deadline and
# the next model are better bets than a long sleep.
MAX_RETRY_AFTER_SECONDS = 60.0
# Backoff without Retry-After: 0.5 s doubling per attempt, capped, half of it random.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0

_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length"}


class Verdict(StrEnum):
    RETRY = "retry"  # same model again, after a wait
    NEXT_MODEL = "next_model"  # this model cannot take it; the next one may
    FATAL = "fatal"  # nobody will take it: fail the job


def verdict(exc: BaseException) -> Verdict:
    match exc:
        case (
            openai.RateLimitError()
            | openai.InternalServerError()
            | openai.APITimeoutError()
            | openai.APIConnectionError()
        ):
            return Verdict.RETRY
        case openai.APIStatusError() if exc.status_code in (408, 409) or exc.status_code >= 500:
            return Verdict.RETRY
        case openai.BadRequestError() if _is_context_length(exc):
            return Verdict.NEXT_MODEL
    return Verdict.FATAL


def _is_context_length(exc: openai.BadRequestError) -> bool:
    text = f"{exc.code or ''} {exc.message}".lower()
    return exc.code in _CONTEXT_CODES or "context length" in text or "context_length" in text


def _seconds(value: str, scale: float = 1.0) -> float | None:
    """A finite, non-negative number of seconds, or None: `nan` would make the wait nan
    (no wait at all, so a loop), `inf` and negatives are no wait anyone asked for."""
    try:
        seconds = float(value) * scale
    except ValueError:
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _date(value: str) -> float | None:
    """Seconds until an HTTP date; None unless it is one with a time zone."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means "zone unknown": no instant to wait for
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The wait a backend asked for (`retry-after-ms`, or `Retry-After` in seconds or as a
    date), or None; a malformed value (`5s`, `nan`, a date without a zone) is ignored, and
    the usual backoff applies."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    if (ms := headers.get("retry-after-ms")) is not None and (
        asked := _seconds(ms, 1 / 1000)
    ) is not None:
        return asked
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    return _seconds(value) if value[0].isdecimal() else _date(value)


def backoff_seconds(attempt: int) -> float:
    """Exponential with jitter: half fixed, half random, so retries of many jobs spread."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (attempt - 1))
    jitter: float = random.uniform(0, ceiling / 2)  # noqa: S311 (jitter, not crypto)
    return ceiling / 2 + jitter


def on_profile(profile: ModelProfile, deadline: datetime | None) -> AsyncRetrying:
    """The retry loop for calls to one profile."""

    def wait(state: RetryCallState) -> float:
        asked = retry_after_seconds(state.outcome.exception() if state.outcome else None)
        if asked is not None:
            return min(asked, MAX_RETRY_AFTER_SECONDS)
        return backoff_seconds(state.attempt_number)

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= profile.max_attempts:
            return True
        if deadline is None:
            return False
        # Never sleep into the deadline: the caller moves on (or the job ends) instead.
        wake = datetime.now(UTC).timestamp() + (state.upcoming_sleep or 0.0)
        return wake >= deadline.timestamp()

    return AsyncRetrying(
        stop=stop,
        wait=wait,
        retry=retry_if_exception(lambda exc: verdict(exc) is Verdict.RETRY),
        reraise=True,
    )
