"""Webhook event filters (packages/contract WebhookSpec): which change is delivered as which
event, and `running`, the old name of `start`, still accepted."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobrelay.contract import JobStatus, WebhookEvent, WebhookSpec

URL = "https://hooks.example/x"


def spec(*events: str) -> WebhookSpec:
    return WebhookSpec.model_validate({"url": URL, "events": list(events)})


def test_running_is_read_as_start_and_kept_once() -> None:
    assert spec("running", "completed", "start").events == [
        WebhookEvent.START,
        WebhookEvent.COMPLETED,
    ]
    assert spec("running").wanted(JobStatus.RUNNING) is WebhookEvent.START


def test_the_default_is_completed_alone() -> None:
    default = WebhookSpec(url=URL)
    assert default.wanted(JobStatus.RUNNING) is None
    assert default.wanted(JobStatus.SUCCEEDED) is WebhookEvent.COMPLETED
    assert default.wanted(JobStatus.FAILED) is WebhookEvent.COMPLETED  # as it always was


@pytest.mark.parametrize(
    ("events", "status", "delivered"),
    [
        (["start", "completed"], JobStatus.QUEUED, None),
        (["start", "completed"], JobStatus.RUNNING, WebhookEvent.START),
        (["start", "completed"], JobStatus.SUCCEEDED, WebhookEvent.COMPLETED),
        (["failed"], JobStatus.SUCCEEDED, None),
        (["failed"], JobStatus.FAILED, WebhookEvent.FAILED),
        (["failed"], JobStatus.EXPIRED, WebhookEvent.FAILED),
        (["failed"], JobStatus.CANCELLED, WebhookEvent.FAILED),
        # Asked for both ways, a failure is delivered once, as `failed`.
        (["completed", "failed"], JobStatus.FAILED, WebhookEvent.FAILED),
        (["output"], JobStatus.RUNNING, None),  # outputs come with text, not with a change
        (["output"], JobStatus.SUCCEEDED, None),
    ],
)
def test_each_change_is_delivered_as_the_event_asked_for(
    events: list[str], status: JobStatus, delivered: WebhookEvent | None
) -> None:
    assert spec(*events).wanted(status) is delivered


def test_an_unknown_event_is_refused() -> None:
    with pytest.raises(ValidationError):
        spec("succeeded")
