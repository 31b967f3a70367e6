"""Buffering a streaming task's tokens into delta chunks (apps/worker/streaming.py): far
fewer puts than tokens, chunks whole and in order, a refused put kept for the next flush,
events only to watchers and `output` webhooks at most once per throttle period.

The store here is a list (the test's own stand-in for jobrelay.deltas); the writer under
test is the real one. The topics' side is jobrelay.events over an in-memory FAKE of the Dapr
client."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from dapr.clients.exceptions import DaprInternalError

from apps.worker.streaming import DeltaWriter, Streams, flushed
from jobrelay.constants import JOB_EVENTS_TOPIC, WEBHOOK_EVENTS_TOPIC
from jobrelay.contract import JobEvent, JobInput, JobRecord, JobStatus
from jobrelay.deltas import DeltaLog
from jobrelay.events import Events
from jobrelay.state import State
from jobrelay.store import JobStore
from tests.doubles.memory_dapr import MemoryDapr

pytestmark = pytest.mark.anyio


def running(watchers: list[str] | None = None) -> JobRecord:
    queued = JobRecord.new("chat", JobInput(text="hi"), {}, {})
    return queued.moved_to(JobStatus.RUNNING, watchers=watchers or [])


@dataclass
class Sink:
    """Stored chunks by number, and what was told, in order; the first `refuse` puts fail."""

    refuse: int = 0
    chunks: dict[int, str] = field(default_factory=dict)
    told: list[tuple[int, bool]] = field(default_factory=list)
    puts: int = 0

    async def store(self, record: JobRecord, n: int, text: str) -> None:
        self.puts += 1
        if self.puts <= self.refuse:
            raise DaprInternalError("state store unreachable")
        assert n == len(self.chunks) + 1, "chunks are stored in order, none skipped"
        self.chunks[n] = text

    async def notify(self, record: JobRecord, n: int, output: bool) -> None:
        self.told.append((n, output))


def writer(sink: Sink, record: JobRecord, **options: float | bool) -> DeltaWriter:
    return DeltaWriter(record, sink.store, sink.notify, **options)  # type: ignore[arg-type]


async def test_tokens_arriving_one_by_one_go_out_in_chunks_of_at_most_32() -> None:
    sink = Sink()
    deltas = writer(sink, running(), seconds=10.0)  # only the token count flushes here
    tokens = [f"t{i} " for i in range(200)]
    for token in tokens:
        deltas.add(token)
        await asyncio.sleep(0.001)
    await deltas.close()
    assert "".join(sink.chunks.values()) == "".join(tokens)
    assert sink.puts == len(sink.chunks) <= 8  # 200 tokens: 7 chunks of 32 (and the rest)
    assert all(len(text.split()) <= 32 for text in sink.chunks.values())


async def test_a_slow_model_is_flushed_after_50_ms_without_waiting_for_32_tokens() -> None:
    sink = Sink()
    deltas = writer(sink, running())
    deltas.add("Hello")
    deltas.add(" world")
    await asyncio.sleep(0.3)
    assert sink.chunks == {1: "Hello world"}  # flushed on time, before any close
    deltas.add("!")
    await deltas.close()
    assert sink.chunks == {1: "Hello world", 2: "!"}


async def test_a_refused_put_keeps_its_text_for_the_next_flush_under_the_same_number() -> None:
    sink = Sink(refuse=1)
    deltas = writer(sink, running(), seconds=0.01)
    deltas.add("a")
    await asyncio.sleep(0.1)
    deltas.add("b")
    await deltas.close()
    assert sink.chunks[1].startswith("a")
    assert "".join(sink.chunks.values()) == "ab"


async def test_a_store_that_stays_down_fails_the_close_rather_than_leave_a_hole() -> None:
    sink = Sink(refuse=10_000)
    deltas = writer(sink, running(), seconds=0.01)
    deltas.add("lost?")
    with pytest.raises(DaprInternalError):
        await deltas.close()
    assert sink.chunks == {}


async def test_a_job_nobody_watches_publishes_no_event_per_chunk() -> None:
    sink = Sink()
    deltas = writer(sink, running(watchers=[]), seconds=0.01)
    for token in ["one", "two", "three"]:
        deltas.add(token)
        await asyncio.sleep(0.05)
    await deltas.close()
    assert len(sink.chunks) == 3
    assert sink.told == []


async def test_watchers_hear_of_every_chunk_and_output_at_most_once_per_period() -> None:
    sink = Sink()
    deltas = writer(sink, running(watchers=["status-a"]), seconds=0.01, output=True)
    for token in ["one", "two", "three", "four"]:
        deltas.add(token)
        await asyncio.sleep(0.05)
    await deltas.close()
    assert [n for n, _ in sink.told] == list(sink.chunks) == [1, 2, 3, 4]
    # The default period, 500 ms, is longer than the whole stream: the first chunk alone.
    assert [output for _, output in sink.told] == [True, False, False, False]


async def test_output_alone_tells_only_the_webhook_on_its_throttle() -> None:
    sink = Sink()
    deltas = writer(sink, running(), seconds=0.01, output=True, output_seconds=0.12)
    for token in ["a", "b", "c", "d", "e", "f"]:
        deltas.add(token)
        await asyncio.sleep(0.05)
    await deltas.close()
    assert len(sink.chunks) == 6
    assert all(output for _, output in sink.told)  # no watchers: only webhook events
    assert 2 <= len(sink.told) <= 3  # 6 chunks over ~300 ms, at most one per 120 ms


async def test_an_intake_waiting_on_the_job_is_not_sent_an_event_per_chunk() -> None:
    sink = Sink()
    deltas = writer(sink, running(watchers=["intake-1f2e3d4c5b6a"]), seconds=0.01)
    for token in ["one", "two"]:
        deltas.add(token)
        await asyncio.sleep(0.05)
    await deltas.close()
    assert len(sink.chunks) == 2
    assert sink.told == []


async def test_a_delta_event_names_only_the_status_replicas_and_carries_no_text() -> None:
    """Events.streamed over an in-memory FAKE of the Dapr client: what goes on the topics."""
    dapr = MemoryDapr()
    record = running(watchers=["intake-aaaaaaaaaaaa", "status-bbbbbbbbbbbb"])
    await Events(cast(Any, dapr)).streamed(record, 3, output=True)
    by_topic = {topic: JobEvent.model_validate_json(data) for _, topic, data in dapr.published}
    assert set(by_topic) == {JOB_EVENTS_TOPIC, WEBHOOK_EVENTS_TOPIC}
    live = by_topic[JOB_EVENTS_TOPIC]
    assert (live.seq, live.delta, live.watchers) == (record.seq, 3, ["status-bbbbbbbbbbbb"])
    assert "text" not in json.loads(dapr.published[0][2])  # the text stays in the store


async def test_no_reader_and_no_output_webhook_publish_nothing() -> None:
    dapr = MemoryDapr()
    await Events(cast(Any, dapr)).streamed(running(watchers=["intake-a"]), 1, output=False)
    assert dapr.published == []


async def test_a_task_that_succeeds_has_its_last_text_stored_before_it_returns() -> None:
    sink = Sink()
    deltas = writer(sink, running(), seconds=10.0)  # nothing flushes on time here
    async with flushed(deltas):
        deltas.add("the end")
    assert sink.chunks == {1: "the end"}


async def test_a_task_that_fails_stops_its_writer_and_keeps_its_error() -> None:
    sink = Sink()
    deltas = writer(sink, running(), seconds=0.02)  # would flush at once if left running

    async def failing_task() -> None:
        async with flushed(deltas):
            deltas.add("half")
            raise ValueError("model gave up")

    with pytest.raises(ValueError, match="model gave up"):
        await failing_task()
    await asyncio.sleep(0.1)
    assert sink.chunks == {}  # an attempt that failed streams nothing more


async def test_a_stream_that_began_after_the_claim_is_told_once_the_record_is_reread() -> None:
    sink = Sink()
    named: list[str] = []  # the record's watchers, as a reread would find them
    looks = 0

    async def watchers() -> list[str]:
        nonlocal looks
        looks += 1
        return list(named)

    deltas = DeltaWriter(
        running(), sink.store, sink.notify, seconds=0.01, watchers=watchers, watchers_seconds=0.1
    )
    for i in range(12):
        if i == 4:
            named.append("status-cccccccccccc")  # a stream registers on the record
        deltas.add(f"t{i}")
        await asyncio.sleep(0.04)
    await deltas.close()
    told = [n for n, _ in sink.told]
    assert told, "the stream is told of chunks once a reread found it"
    assert told == list(range(told[0], len(sink.chunks) + 1))  # from then on, every one
    assert told[0] > 4  # not before it registered
    assert looks <= 6  # at most one reread per 100 ms over ~0.5 s, not one per chunk


@pytest.mark.parametrize("task", ["classify", "embed", "extract", "read_document"])
def test_tasks_that_do_not_stream_get_no_writer(task: str) -> None:
    dapr = MemoryDapr()
    state = State(cast(Any, dapr))
    streams = Streams(DeltaLog(state), JobStore(state, 60), Events(cast(Any, dapr)))
    record = JobRecord.new(task, JobInput(text="x"), {}, {}).moved_to(JobStatus.RUNNING)
    assert streams.writer(record) is None
    assert streams.writer(record.model_copy(update={"task": "chat"})) is not None
