"""Streamed output (issue 19): a chat job's text arrives as `delta` events between `running`
and `succeeded`; a client that drops after the first delta and comes back with its
Last-Event-ID on ANOTHER status replica gets the rest exactly once; webhook event filters
deliver exactly the events asked for, signed. Real daprd sidecars, the real broker and
store of the profile, the real local chat model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from jobrelay.client import Client, ClientSettings, Delta, Submission
from jobrelay.contract import JobStatus, JobView
from tests.integration.helpers import SseEvent, submit, wait_done, webhook_receiver
from tests.integration.replicas import Replica, start_replica, stop_replica
from tests.integration.stack import API_KEYS, WEBHOOK_SECRET, Stack

PROMPT = "Tell a long story about a dragon who learns to bake bread, with many details."


def chat_job(**extra: Any) -> dict[str, Any]:
    return {
        "task": "chat",
        "input": {"text": PROMPT},
        "params": {"max_tokens": 160, "temperature": 0.7},
        **extra,
    }


@pytest.fixture(scope="module")
def second_status(stack: Stack) -> Iterator[Replica]:
    """A second status replica with its own sidecar, beside the stack's."""
    replica = start_replica(stack, "status", "status-2")
    try:
        yield replica
    finally:
        stop_replica(replica, stack)


def events_until(
    client: httpx.Client,
    url: str,
    stop_after: str | None = None,
    headers: dict[str, str] | None = None,
) -> list[SseEvent]:
    """A stream's events until it ends, or until the first `stop_after` event (then the
    connection is dropped, as a client that goes away)."""
    events: list[SseEvent] = []
    current: dict[str, str] = {}
    with client.stream("GET", url, headers=headers or {}, timeout=60) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                current[name] = value.removeprefix(" ")
                continue
            if "data" in current:
                event = SseEvent(
                    current.get("id"), current.get("event"), json.loads(current["data"])
                )
                events.append(event)
                if event.event == stop_after:
                    return events
            current = {}
    return events


def _delta_number(event_id: str | None) -> tuple[int, int]:
    assert event_id is not None
    seq, _, n = event_id.partition(".")
    return int(seq), int(n or 0)


def test_a_dropped_stream_resumes_on_another_replica_with_each_delta_once(
    client: httpx.Client, stack: Stack, second_status: Replica
) -> None:
    job = submit(client, stack, chat_job()).json()
    path = f"/v1/jobs/{job['id']}/events"
    first = events_until(client, f"{stack.url('status')}{path}", stop_after="delta")
    assert first[-1].event == "delta", [e.event for e in first]
    assert "running" in [e.event for e in first]
    resumed_from = first[-1].id
    assert resumed_from is not None

    rest = events_until(
        client, f"{second_status.url}{path}", headers={"Last-Event-ID": resumed_from}
    )
    assert rest[-1].event == "succeeded", [e.event for e in rest]
    deltas = [first[-1], *(e for e in rest if e.event == "delta")]
    assert len(deltas) >= 2
    assert all(e.event == "delta" for e in rest[:-1])  # nothing but the rest, then the end
    # Exactly once: one attempt's deltas numbered 1, 2, 3, ... with none repeated or missing.
    numbers = [_delta_number(e.id) for e in deltas]
    seq = numbers[0][0]
    assert numbers == [(seq, n) for n in range(1, len(deltas) + 1)]
    assert _delta_number(rest[-1].id) > numbers[-1]  # the end's id follows the deltas'
    text = "".join(e.data["text"] for e in deltas)
    assert text == rest[-1].data["result"]["output"]["message"]["content"]


def test_a_stream_after_the_job_ended_still_resumes_from_a_delta(
    client: httpx.Client, stack: Stack, second_status: Replica
) -> None:
    job = submit(client, stack, chat_job()).json()
    done = wait_done(client, job["status_url"], timeout=120)
    path = f"/v1/jobs/{job['id']}/events"
    # Seen: the job queued (its first event, id 0). The rest is its text, then its end.
    whole = events_until(client, f"{second_status.url}{path}", headers={"Last-Event-ID": "0"})
    assert [e.event for e in whole][-1] == "succeeded"
    deltas = [e for e in whole if e.event == "delta"]
    assert len(deltas) >= 2
    assert len({_delta_number(e.id)[0] for e in deltas}) == 1  # one attempt's
    text = "".join(e.data["text"] for e in deltas)
    assert text == done["result"]["output"]["message"]["content"]
    # From the second delta on, on the other replica: the rest, once.
    after = events_until(
        client, f"{stack.url('status')}{path}", headers={"Last-Event-ID": str(deltas[1].id)}
    )
    assert [e.id for e in after] == [e.id for e in whole[whole.index(deltas[1]) + 1 :]]


def test_a_webhook_for_start_and_completed_gets_exactly_those_two_signed(
    client: httpx.Client, stack: Stack
) -> None:
    with webhook_receiver() as receiver:
        hook = {"url": receiver.url, "events": ["start", "completed"]}
        job = submit(client, stack, chat_job(webhook=hook)).json()
        received = receiver.wait_for(2, timeout=120)
        time.sleep(2)  # no third (no `output`) may follow
        received = list(receiver.received)
    assert len(received) == 2
    verifier = Webhook(WEBHOOK_SECRET)
    bodies = [verifier.verify(r.body, r.headers) for r in received]
    assert [b["status"] for b in bodies] == ["running", "succeeded"]
    assert all(b["id"] == job["id"] for b in bodies)
    assert [b["webhook"]["events"] for b in bodies] == [["start", "completed"]] * 2


def test_output_webhooks_carry_the_text_so_far_throttled(
    client: httpx.Client, stack: Stack
) -> None:
    with webhook_receiver() as receiver:
        hook = {"url": receiver.url, "events": ["output", "completed"]}
        # Long enough (seconds, not one) that an `output` is delivered while the attempt
        # runs: one still on its way when the job ends is dropped by design (its outcome is
        # delivered instead), and a short story ended in 1.3 s on a quiet machine.
        long_text = {"max_tokens": 400, "temperature": 0}
        job = submit(client, stack, chat_job(webhook=hook, params=long_text)).json()
        done = wait_done(client, job["status_url"], timeout=120)
        receiver.wait_for(2, timeout=30)
        time.sleep(1)
        received = list(receiver.received)
    verifier = Webhook(WEBHOOK_SECRET)
    bodies = [(r, verifier.verify(r.body, r.headers)) for r in received]
    # Two status replicas share the webhooks (the module's second one is up), and nothing
    # orders deliveries across replicas: an `output` may land after `completed`. Its
    # webhook-id (`{job}-{seq}.{n}`) gives its place (docs/api.md, Webhooks).
    outputs = [(r, b) for r, b in bodies if b["status"] == "running"]
    (last,) = [b for _, b in bodies if b["status"] == "succeeded"]
    assert len(outputs) + 1 == len(bodies)
    assert outputs, "at least one output"
    final = done["result"]["output"]["message"]["content"]
    in_order = sorted(outputs, key=lambda rb: int(rb[0].headers["webhook-id"].rsplit(".", 1)[1]))
    texts = [b["streamed_text"] for _, b in in_order]
    assert all(final.startswith(t) for t in texts)  # each the text so far
    assert texts == sorted(texts, key=len)
    stamps = [int(r.headers["webhook-timestamp"]) for r, _ in outputs]
    # At most one per 500 ms: whole-second stamps allow at most 2 per second.
    assert all(stamps.count(s) <= 2 for s in stamps)
    assert "streamed_text" not in last


def test_the_sdk_streams_the_text_as_it_comes(stack: Stack, second_status: Replica) -> None:
    settings = ClientSettings(
        intake_url=stack.url("intake"),
        status_url=second_status.url,  # the other replica: any one serves the text
        api_key=SecretStr(API_KEYS["default"]),
    )
    with Client(settings) as jobs:
        job = jobs.submit(Submission("chat", text=PROMPT, params={"max_tokens": 80}))
        events = list(jobs.stream(job, timeout=120))
    deltas = [e for e in events if isinstance(e, Delta)]
    final = events[-1]
    assert isinstance(final, JobView)
    assert final.status is JobStatus.SUCCEEDED
    assert len(deltas) >= 2
    assert final.result is not None
    assert "".join(d.text for d in deltas) == final.result.output["message"]["content"]
