"""The job index (jobrelay.job_index) and the listing's cursor, on the in-memory FAKE of the
Dapr client (tests/doubles/memory_dapr.py, which keeps Dapr's ETag rules)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from dapr.aio.clients import DaprClient

from apps.status.listing import BadCursor, decode_cursor, encode_cursor
from jobrelay import keys
from jobrelay.contract import JobInput, JobRecord
from jobrelay.job_index import PAGE_SIZE, Entry, Head, JobIndex, appended
from jobrelay.state import State
from tests.doubles.memory_dapr import MemoryDapr

pytestmark = pytest.mark.anyio


def _entry(n: int) -> Entry:
    return Entry(id=f"{n:032x}", created=1_000_000 + n, task="embed", metadata={})


def _record(n: int, tenant: str = "acme") -> JobRecord:
    record = JobRecord.new("embed", JobInput(text="hi"), {}, {"n": str(n)}, tenant=tenant)
    return record.model_copy(update={"id": f"{n:032x}"})


def test_an_append_fills_the_tail_seals_it_into_previous_and_the_next_drops_it() -> None:
    head = appended(Head(), [_entry(n) for n in range(PAGE_SIZE)])
    assert (head.page, len(head.tail), head.previous) == (0, PAGE_SIZE, [])

    head = appended(head, [_entry(PAGE_SIZE)])
    assert (head.page, len(head.tail)) == (1, 1)
    assert [e.id for e in head.previous] == [_entry(n).id for n in range(PAGE_SIZE)]

    head = appended(head, [_entry(PAGE_SIZE + 1)])  # its caller wrote page 0 to its key
    assert (head.page, len(head.tail), head.previous) == (1, 2, [])
    assert head.count == PAGE_SIZE + 2


def test_an_append_leaves_out_entries_already_there_or_known_sealed() -> None:
    head = appended(Head(), [_entry(1), _entry(2)])
    head = appended(head, [_entry(2), _entry(3)])
    assert [e.id for e in head.tail] == [_entry(n).id for n in (1, 2, 3)]
    head = appended(head, [_entry(0), _entry(4)], known={_entry(0).id})
    assert [e.id for e in head.tail] == [_entry(n).id for n in (1, 2, 3, 4)]


def test_metadata_too_big_for_an_entry_is_left_to_the_record() -> None:
    small = _record(1)
    big = small.model_copy(update={"metadata": {"k": "v" * 500}})
    assert Entry.of(small).metadata == {"n": "1"}
    assert Entry.of(big).metadata is None


def _index(dapr: MemoryDapr) -> JobIndex:
    return JobIndex(State(cast(DaprClient, dapr)), retention_seconds=60)


async def test_concurrent_adds_on_two_replicas_keep_every_job_once_newest_first() -> None:
    dapr = MemoryDapr()
    replicas = [_index(dapr), _index(dapr)]
    total = 3 * PAGE_SIZE + 17
    await asyncio.gather(*(replicas[n % 2].add(_record(n)) for n in range(total)))

    reader = _index(dapr)
    head = await reader.head("acme")
    assert head is not None
    assert head.count == total
    listed = await reader.before("acme", head, head.count, 10 * total)
    positions = [p.position for p in listed]
    assert positions == list(range(total - 1, -1, -1))
    assert sorted(p.entry.id for p in listed) == sorted(_record(n).id for n in range(total))
    # Sealed pages are their own keys, with a TTL, but for the one the last append sealed.
    sealed = head.page - 1 if head.previous else head.page
    for page in range(sealed):
        assert dapr.has(keys.index_page("acme", page))
        assert dapr.ttl(keys.index_page("acme", page)) is not None


async def test_a_sealed_page_leaves_the_head_with_the_next_append_its_key_written_first() -> None:
    dapr = MemoryDapr()
    index = _index(dapr)
    await index.add_many("acme", [_entry(n) for n in range(PAGE_SIZE + 1)])
    head = await index.head("acme")
    assert head is not None
    assert (head.page, len(head.previous)) == (1, PAGE_SIZE)
    assert not dapr.has(keys.index_page("acme", 0))
    listed = await index.before("acme", head, head.count, 10 * PAGE_SIZE)  # from `previous`
    assert [p.position for p in listed] == list(range(PAGE_SIZE, -1, -1))

    await index.add_many("acme", [_entry(PAGE_SIZE + 1)])
    head = await index.head("acme")
    assert head is not None
    assert (head.page, len(head.tail), head.previous) == (1, 2, [])
    assert dapr.has(keys.index_page("acme", 0))
    listed = await index.before("acme", head, head.count, 10 * PAGE_SIZE)  # from its key
    assert [p.entry.id for p in listed] == [_entry(n).id for n in range(PAGE_SIZE + 1, -1, -1)]


async def test_before_pages_from_a_position_and_stops_at_an_expired_page() -> None:
    dapr = MemoryDapr()
    index = _index(dapr)
    await index.add_many("acme", [_entry(n) for n in range(4 * PAGE_SIZE)])
    head = await index.head("acme")
    assert head is not None

    some = await index.before("acme", head, PAGE_SIZE + 5, 10)
    assert [p.position for p in some] == list(range(PAGE_SIZE + 4, PAGE_SIZE - 6, -1))
    assert [p.entry.id for p in some] == [
        _entry(p).id for p in range(PAGE_SIZE + 4, PAGE_SIZE - 6, -1)
    ]

    await dapr.delete_state("statestore", keys.index_page("acme", 1))  # as if it expired
    rest = await index.before("acme", head, head.count, 10 * PAGE_SIZE)
    assert len(rest) == 2 * PAGE_SIZE  # pages 3 and 2, then nothing past the gap


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    assert decode_cursor(encode_cursor(0)) == 0
    assert decode_cursor(encode_cursor(123_456)) == 123_456
    for bad in ("", "not base64!", "e30", encode_cursor(1)[:-2] + "@@", "eyJiZWZvcmUiOi0xfQ"):
        with pytest.raises(BadCursor):
            decode_cursor(bad)
