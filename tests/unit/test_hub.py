import json

import anyio
import pytest

from jobrelay.contract import JobEvent, JobInput, JobRecord, JobStatus
from jobrelay.hub import Delta, EventHub, until_terminal
from jobrelay.subscriptions import Delivery, Message

pytestmark = pytest.mark.anyio


def _job() -> JobRecord:
    return JobRecord.new("embed", JobInput(text="x"), {}, {})


async def test_a_waiter_gets_the_terminal_record_published_after_it_started() -> None:
    hub, queued = EventHub("intake-test"), _job()
    running = queued.moved_to(JobStatus.RUNNING)
    done = running.moved_to(JobStatus.SUCCEEDED)

    with hub.watch(queued.id) as events:
        async with anyio.create_task_group() as group:

            async def publish_later() -> None:
                await anyio.sleep(0.05)
                hub.publish(running)
                hub.publish(done)

            group.start_soon(publish_later)
            final = await until_terminal(events, queued, seconds=5)

    assert final.status is JobStatus.SUCCEEDED


async def test_a_wait_that_runs_out_returns_the_newest_record_seen() -> None:
    hub, queued = EventHub("intake-test"), _job()
    running = queued.moved_to(JobStatus.RUNNING)
    with hub.watch(queued.id) as events:
        hub.publish(running)
        with anyio.fail_after(2):
            final = await until_terminal(events, queued, seconds=0.1)
    assert final.status is JobStatus.RUNNING


async def test_an_older_event_never_replaces_a_newer_record() -> None:
    hub, queued = EventHub("intake-test"), _job()
    done = queued.moved_to(JobStatus.RUNNING).moved_to(JobStatus.SUCCEEDED)
    with hub.watch(queued.id) as events:
        hub.publish(queued)  # a late duplicate of an older state
        final = await until_terminal(events, done, seconds=0.1)
    assert final is done


async def test_events_of_other_jobs_and_unwatched_jobs_go_nowhere() -> None:
    hub, mine, other = EventHub("intake-test"), _job(), _job()
    hub.publish(other)  # nobody watches it: dropped, no error
    with hub.watch(mine.id) as events:
        hub.publish(other)
        assert events.empty()


def _delivery(event: JobEvent) -> Message:
    """A delivery of `event` as daprd posts it: a structured CloudEvent."""
    cloud_event = {
        "specversion": "1.0",
        "id": "1",
        "source": "worker",
        "type": "com.dapr.event.sent",
        "datacontenttype": "application/json",
        "data": json.loads(event.model_dump_json()),
    }
    return Message(
        json.dumps(cloud_event).encode(), {"content-type": "application/cloudevents+json"}
    )


async def test_a_delta_event_reaches_the_streams_without_a_store_read() -> None:
    hub = EventHub("status-test")  # never bound to a store: a read would fail the test
    running = _job().moved_to(JobStatus.RUNNING, watchers=["status-test"])
    with hub.watch(running.id) as events:
        answer = await hub._on(_delivery(JobEvent.of(running, delta=4)))
        assert answer is Delivery.SUCCESS
        assert events.get_nowait() == Delta(running.id, running.seq, 4)


async def test_a_wait_for_the_end_passes_over_deltas() -> None:
    hub, queued = EventHub("intake-test"), _job()
    running = queued.moved_to(JobStatus.RUNNING)
    with hub.watch(queued.id) as events:
        hub.publish(running)
        hub.publish(Delta(queued.id, running.seq, 1))
        final = await until_terminal(events, queued, seconds=0.1)
    assert final == running
