"""The chat task's params: the OpenAI body fields jobrelay passes on, and what it refuses
(issue 17, High 2): the SDK's control arguments, the model, more than one answer, and
token counts past the operator's cap."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from apps.worker.model_client import ModelClient
from apps.worker.tasks import chat
from jobrelay.contract import JobInput, JobRecord
from jobrelay.task_catalog import parse_params
from jobrelay.task_params import ChatParams

HELLO = [{"role": "user", "content": "Say hello."}]


def refusal(params: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as raised:
        parse_params("chat", {"messages": HELLO, **params})
    error = raised.value.errors()[0]
    return error["type"], error["msg"]


@pytest.mark.parametrize(
    "params",
    [
        {"extra_body": {"model": "premium", "n": 64, "max_tokens": 100_000}},
        {"extra_headers": {"OpenAI-Organization": "theirs"}},
        {"extra_query": {"api-version": "x"}},
        {"timeout": 3600},
    ],
    ids=["extra_body", "extra_headers", "extra_query", "timeout"],
)
def test_the_sdks_control_arguments_are_refused(params: dict[str, Any]) -> None:
    kind, message = refusal(params)
    assert kind == "chat_param_not_allowed"
    assert next(iter(params)) in message


@pytest.mark.parametrize(
    "params",
    [{"model": "gpt-premium"}, {"stream": True}, {"service_tier": "priority"}, {"store": True}],
    ids=["model", "stream", "service_tier", "store"],
)
def test_fields_outside_the_allowlist_are_refused(params: dict[str, Any]) -> None:
    assert refusal(params)[0] == "chat_param_not_allowed"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_token_counts_past_the_cap_are_refused(field: str) -> None:
    kind, message = refusal({field: 100_000})
    assert kind == "chat_param_too_large"
    assert "4096" in message
    parse_params("chat", {"messages": HELLO, field: 4096})


def test_one_answer_per_job() -> None:
    assert refusal({"n": 64})[0] == "literal_error"
    parse_params("chat", {"messages": HELLO, "n": 1})


def test_the_allowed_fields_pass_through_and_unset_ones_are_not_sent() -> None:
    params = parse_params(
        "chat",
        {
            "messages": HELLO,
            "max_tokens": 60,
            "temperature": 0.2,
            "stop": ["\n"],
            "response_format": {"type": "json_object"},
            "stream": False,
        },
    )
    assert isinstance(params, ChatParams)
    assert params.model_dump(exclude_none=True) == {
        "messages": HELLO,
        "max_tokens": 60,
        "temperature": 0.2,
        "stop": ["\n"],
        "response_format": {"type": "json_object"},
    }


@pytest.mark.anyio
async def test_the_worker_refuses_a_stored_job_that_carries_extra_body() -> None:
    # A job stored before this check (or written past intake) never reaches create(**body).
    record = JobRecord.new(
        "chat", JobInput(), {"messages": HELLO, "extra_body": {"model": "premium"}}, {}
    )
    with pytest.raises(ValidationError):
        await chat.run(record, ModelClient.__new__(ModelClient))
