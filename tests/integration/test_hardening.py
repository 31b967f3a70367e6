"""Issue 17 on the running stack: what a hostile tenant sends is answered 4xx with a stable
code and a message for people, while the worker keeps serving others; one tenant's silent
webhook receivers do not hold up another's webhooks; a malformed Last-Event-ID does not
break a stream."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.integration.helpers import (
    classify,
    read_events,
    submit,
    submit_all,
    wait_done,
    webhook_receiver,
)
from tests.integration.stack import Stack, client_headers


def doubling_schema(levels: int) -> dict[str, Any]:
    defs: dict[str, Any] = {"d0": {}}
    for i in range(1, levels + 1):
        defs[f"d{i}"] = {"allOf": [{"$ref": f"#/$defs/d{i - 1}"}, {"$ref": f"#/$defs/d{i - 1}"}]}
    return {"$defs": defs, "$ref": f"#/$defs/d{levels}"}


def nested_schema(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


def _extract(schema: dict[str, Any]) -> dict[str, Any]:
    return {"task": "extract", "input": {"text": "Ada Lovelace"}, "params": {"schema": schema}}


def _chat(**extra: Any) -> dict[str, Any]:
    return {"task": "chat", "params": {"messages": [{"role": "user", "content": "hi"}], **extra}}


HOSTILE = {
    "40-level-schema": (_extract(doubling_schema(40)), 422, "schema_too_complex"),
    "150-deep-schema": (_extract(nested_schema(150)), 422, "schema_too_complex"),
    "backtracking-pattern": (
        _extract({"type": "string", "pattern": "^(a|a)*\\1$"}),
        422,
        "schema_not_supported",
    ),
    "extra_body": (
        _chat(extra_body={"model": "premium", "n": 64, "max_tokens": 100_000}),
        422,
        "chat_param_not_allowed",
    ),
    "extra_headers": (_chat(extra_headers={"X-Tenant": "other"}), 422, "chat_param_not_allowed"),
    "max_tokens": (_chat(max_tokens=100_000), 422, "chat_param_too_large"),
    "nat64-loopback": (
        classify("hi", webhook={"url": "http://[64:ff9b::7f00:1]/"}),
        422,
        "webhook_url_refused",
    ),
    "6to4-loopback": (
        classify("hi", webhook={"url": "http://[2002:7f00:1::]/"}),
        422,
        "webhook_url_refused",
    ),
    "mapped-loopback": (
        classify("hi", webhook={"url": "http://[::ffff:127.0.0.1]/"}),
        422,
        "webhook_url_refused",
    ),
    "600-KB-metadata": (
        classify("hi", metadata={"blob": "x" * 600_000}),
        413,
        "metadata_too_large",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_submit_is_refused_with_a_stable_code_and_the_worker_keeps_serving(
    client: httpx.Client, stack: Stack, case: str
) -> None:
    body, status, code = HOSTILE[case]
    resp = submit(client, stack, body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code
    assert len(error["message"]) > 20  # a sentence a person can act on
    # The stack's local webhook receivers are allowed on 127.0.0.0/8; the IPv6 forms of
    # loopback were refused all the same, before any job existed.
    job = submit(client, stack, classify("I love this product, it works perfectly!")).json()
    assert wait_done(client, job["status_url"])["result"]["output"]["label"] == "positive"


def test_a_file_name_past_its_cap_is_refused(client: httpx.Client, stack: Stack) -> None:
    resp = client.post(
        f"{stack.url('intake')}/v1/jobs",
        data={"task": "embed"},
        files={"file": ("n" * 300 + ".txt", b"some text", "text/plain")},
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "filename_too_long"


@pytest.mark.parametrize("last_event_id", [b"\xb2", b"1" * 4301], ids=["superscript-2", "4301"])
def test_a_malformed_last_event_id_restarts_the_stream_rather_than_breaking_it(
    client: httpx.Client, stack: Stack, last_event_id: bytes
) -> None:
    # b"\xb2" is "²" as the server reads header bytes (latin-1): str.isdigit() says yes.
    job = submit(client, stack, classify("Resume me.")).json()
    headers = httpx.Headers([(b"Last-Event-ID", last_event_id)])
    events = read_events(client, f"{job['status_url']}/events", headers)
    assert events[-1].data["status"] == "succeeded"


@contextmanager
def black_hole() -> Iterator[str]:
    """A receiver that accepts connections and never answers them."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        sock.close()  # what is still connected is reset, so the stack's retries end fast


def test_one_tenants_silent_webhooks_do_not_delay_anothers_past_two_seconds(
    stack: Stack,
) -> None:
    with black_hole() as silent, webhook_receiver() as hook:
        noisy = [
            {"task": "embed", "input": {"text": f"noise {i}"}, "webhook": {"url": silent}}
            for i in range(200)
        ]
        with httpx.Client(timeout=30, headers=client_headers("noisy")) as c:
            urls = [job["status_url"] for job in submit_all(c, stack, noisy)]
            for url in urls:  # all 200 finished: their webhooks are what status works on now
                wait_done(c, url, timeout=120)
        with httpx.Client(timeout=30, headers=client_headers("tenant-b")) as b:
            job = submit(b, stack, classify("Quiet tenant.", webhook={"url": hook.url})).json()
            received = hook.wait_for(1, timeout=30)
            arrived = time.time()
            finished = wait_done(b, job["status_url"])["finished_at"]
    delivered = json.loads(received[0].body)
    assert delivered["id"] == job["id"]
    delay = arrived - datetime.fromisoformat(finished).timestamp()
    assert delay < 2, f"tenant-b's webhook came {delay:.1f} s after its job finished"
