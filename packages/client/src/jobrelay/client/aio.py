"""The asyncio client: `async with AsyncClient() as jobs: await jobs.wait(...)`.

It mirrors jobrelay.client.sync.Client method for method; see there for the behaviour. The
one difference: no `timeout` arguments. Bound a wait the asyncio way, which also cancels
cleanly: `async with asyncio.timeout(30): job = await jobs.wait(job_id)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Self

import httpx
from httpx_sse import SSEError, aconnect_sse

from jobrelay.client.core import HTTP_TIMEOUT, Call, ClientCore, Resumes, polled, stream_refused
from jobrelay.client.errors import JobrelayError, StreamUnavailable
from jobrelay.client.listing import JobFilter, page_or_raise
from jobrelay.client.responses import (
    StreamEvent,
    checked,
    job_or_raise,
    retry_after,
    stream_event,
)
from jobrelay.client.submission import Outcome, Submission
from jobrelay.client.urls import STREAM_READ_TIMEOUT_SECONDS
from jobrelay.contract import JobView

log = logging.getLogger(__name__)


class AsyncClient(ClientCore[httpx.AsyncClient]):
    """A jobrelay API client for asyncio code, built like Client."""

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=HTTP_TIMEOUT)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, *exc: type[BaseException] | BaseException | TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call) -> httpx.Response:
        try:
            return await self._http.request(call.method, call.url, **call.kwargs)
        except httpx.TransportError as exc:
            raise call.failed(exc) from exc

    async def submit(self, submission: Submission, *, prefer_wait: int | None = None) -> JobView:
        return job_or_raise(await self._send(self.requests.submit(submission, prefer_wait)))

    async def get(self, job_id: str) -> JobView:
        return job_or_raise(await self._send(self.requests.get(job_id)))

    async def list(self, filters: JobFilter | None = None) -> AsyncIterator[JobView]:
        response = await self._send(self.requests.list(filters or JobFilter()))
        while True:
            page = page_or_raise(response)
            for job in page.results:
                yield job
            if page.next is None:
                return
            response = await self._send(self.requests.page(page.next))

    async def cancel(self, job_id: str) -> JobView:
        return job_or_raise(await self._send(self.requests.cancel(job_id)))

    async def stream(
        self, job: str | JobView, *, last_event_id: str | int | None = None
    ) -> AsyncIterator[StreamEvent]:
        job_id = job if isinstance(job, str) else job.id
        resumes = Resumes(self.requests.endpoints.events(job_id), last_event_id)
        while True:
            try:
                async for event, event_id in self._read_stream(job_id, resumes.seen):
                    resumes.got(event_id)
                    yield event
                    if isinstance(event, JobView) and event.status.terminal:
                        return
            except (httpx.TransportError, SSEError) as exc:
                resumes.dropped(exc)
            else:
                resumes.ended_early()

    async def _read_stream(
        self, job_id: str, last_seen: str | int | None
    ) -> AsyncIterator[tuple[StreamEvent, str]]:
        call = self.requests.events(job_id, last_seen)
        async with aconnect_sse(
            self._http, call.method, call.url, timeout=STREAM_READ_TIMEOUT_SECONDS, **call.kwargs
        ) as source:
            if source.response.status_code != 200:
                await source.response.aread()
                raise stream_refused(call.url, source.response)
            async for event in source.aiter_sse():
                if (seen := stream_event(event)) is not None:
                    yield seen

    async def wait(self, job_id: str, *, check: bool = True) -> JobView:
        job: JobView | None = None
        if self.use_events:
            try:
                async for state in self.stream(job_id):
                    if isinstance(state, JobView):
                        job = state
            except StreamUnavailable as exc:
                log.info("falling back to polling: %s", exc)
        if job is None or not job.status.terminal:
            job = await self._poll(job_id)
        return checked(job) if check else job

    async def _poll(self, job_id: str) -> JobView:
        while True:
            response = await self._send(self.requests.get(job_id))
            if (job := polled(response)) is not None:
                return job
            await asyncio.sleep(retry_after(response))

    async def run(self, submission: Submission) -> JobView:
        return await self.wait((await self.submit(submission)).id)

    async def map(
        self,
        submissions: Iterable[Submission],
        *,
        concurrency: int = 8,
    ) -> AsyncIterator[Outcome]:
        """Run many jobs, at most `concurrency` at a time, yielding each as it finishes."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        inputs = enumerate(submissions)
        running: set[asyncio.Task[Outcome]] = set()
        try:
            while True:
                for index, submission in inputs:
                    running.add(asyncio.create_task(self._outcome(index, submission)))
                    if len(running) >= concurrency:
                        break
                if not running:
                    return
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
        finally:
            for task in running:
                task.cancel()

    async def _outcome(self, index: int, submission: Submission) -> Outcome:
        try:
            job = await self.submit(submission)
            if not job.status.terminal:
                job = await self.wait(job.id, check=False)
        except JobrelayError as exc:
            return Outcome(index, submission, error=exc)
        return Outcome(index, submission, job=job)
