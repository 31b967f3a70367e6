"""`Client.list` and `AsyncClient.list` against a FAKE status server (httpx.MockTransport):
the query they send and how they follow `next`. The real listing is exercised end to end in
tests/integration/test_listing.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from jobrelay.client import ApiError, AsyncClient, Client, ClientSettings, JobFilter
from jobrelay.contract import JobInput, JobRecord, JobView

SETTINGS = ClientSettings(intake_url="http://intake", status_url="http://status")
JOBS = [JobRecord.new("embed", JobInput(text=str(n)), {}, {}) for n in range(5)]


def _page(request: httpx.Request) -> httpx.Response:
    """Two jobs a page; the cursor is the index of the next job."""
    start = int(request.url.params.get("cursor", "0"))
    views = [
        JobView.of(r, "http://status").model_dump(mode="json") for r in JOBS[start : start + 2]
    ]
    more = start + 2 < len(JOBS)
    query = request.url.copy_set_param("cursor", str(start + 2))
    body: dict[str, Any] = {"results": views, "next": str(query) if more else None}
    return httpx.Response(200, json=body)


def test_list_follows_next_through_every_page_with_the_filters() -> None:
    asked: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        return _page(request)

    client = Client(SETTINGS, http=httpx.Client(transport=httpx.MockTransport(handler)))
    since = datetime(2026, 1, 2, tzinfo=UTC)
    filters = JobFilter(
        status=["succeeded"], task="embed", created_after=since, metadata={"a": "b"}, page_size=2
    )

    listed = [job.id for job in client.list(filters)]

    assert listed == [r.id for r in JOBS]
    assert len(asked) == 3
    first = asked[0].params
    assert asked[0].path == "/v1/jobs"
    assert first.get_list("status") == ["succeeded"]
    assert (first["task"], first["limit"], first["metadata"]) == ("embed", "2", "a=b")
    assert first["created_after"] == "2026-01-02T00:00:00+00:00"
    assert asked[2].params["task"] == "embed"  # `next` keeps the filters


def test_a_refused_listing_raises_its_code() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "invalid_cursor", "message": "no"}}
        return httpx.Response(400, json=body)

    client = Client(SETTINGS, http=httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(ApiError) as raised:
        list(client.list())
    assert raised.value.code == "invalid_cursor"


@pytest.mark.anyio
async def test_the_async_client_lists_the_same_way() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(_page))
    async with AsyncClient(SETTINGS, http=http) as client:
        listed = [job.id async for job in client.list(JobFilter(page_size=2))]
    assert listed == [r.id for r in JOBS]
