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
from typing import Any, Self

import httpx
from httpx_sse import SSEError, aconnect_sse

from jobrelay.client.errors import ConnectionFailed, JobrelayError, StreamUnavailable
from jobrelay.client.responses import (
    api_error,
    checked,
    is_job_event,
    job_of_event,
    job_or_raise,
    retry_after,
)
from jobrelay.client.settings import ClientSettings
from jobrelay.client.submission import Outcome, Submission
from jobrelay.client.urls import MAX_STREAM_RESUMES, STREAM_READ_TIMEOUT_SECONDS, Endpoints
from jobrelay.contract import JobView

log = logging.getLogger(__name__)


class AsyncClient:
    """A jobrelay API client for asyncio code."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        use_events: bool = True,
    ) -> None:
        self.endpoints = Endpoints(settings or ClientSettings())
        self.use_events = use_events
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, *exc: type[BaseException] | BaseException | TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.endpoints.headers)
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{method} {url}: {exc!r}") from exc

    async def submit(self, submission: Submission, *, prefer_wait: int | None = None) -> JobView:
        kwargs = submission.request_kwargs(self.endpoints.headers)
        if prefer_wait:
            kwargs["headers"]["Prefer"] = f"wait={prefer_wait}"
        return job_or_raise(await self._request("POST", self.endpoints.submit, **kwargs))

    async def get(self, job_id: str) -> JobView:
        return job_or_raise(await self._request("GET", self.endpoints.job(job_id)))

    async def cancel(self, job_id: str) -> JobView:
        return job_or_raise(await self._request("DELETE", self.endpoints.job(job_id)))

    async def stream(
        self, job_id: str, *, last_event_id: int | None = None
    ) -> AsyncIterator[JobView]:
        seen = last_event_id
        failures = 0
        while True:
            try:
                async for job, seq in self._read_stream(job_id, seen):
                    seen, failures = seq, 0
                    yield job
                    if job.status.terminal:
                        return
            except (httpx.TransportError, SSEError) as exc:
                failures += 1
                if seen is None or failures > MAX_STREAM_RESUMES:
                    raise StreamUnavailable(f"{self.endpoints.events(job_id)}: {exc!r}") from exc
                log.info("event stream of %s dropped after seq %s; resuming", job_id, seen)
            else:
                failures += 1
                if failures > MAX_STREAM_RESUMES:
                    raise StreamUnavailable(f"{self.endpoints.events(job_id)} keeps ending early")
                log.info("event stream of %s ended early after seq %s; resuming", job_id, seen)

    async def _read_stream(
        self, job_id: str, last_seen: int | None
    ) -> AsyncIterator[tuple[JobView, int]]:
        headers = dict(self.endpoints.headers)
        if last_seen is not None:
            headers["Last-Event-ID"] = str(last_seen)
        url = self.endpoints.events(job_id)
        async with aconnect_sse(
            self._http, "GET", url, headers=headers, timeout=STREAM_READ_TIMEOUT_SECONDS
        ) as source:
            if source.response.status_code != 200:
                await source.response.aread()
                error = api_error(source.response)
                if error.code == "job_not_found":
                    raise error
                raise StreamUnavailable(f"{url}: {error}")
            async for event in source.aiter_sse():
                if is_job_event(event):
                    yield job_of_event(event), int(event.id)

    async def wait(self, job_id: str, *, check: bool = True) -> JobView:
        job: JobView | None = None
        if self.use_events:
            try:
                async for state in self.stream(job_id):
                    job = state
            except StreamUnavailable as exc:
                log.info("falling back to polling: %s", exc)
        if job is None or not job.status.terminal:
            job = await self._poll(job_id)
        return checked(job) if check else job

    async def _poll(self, job_id: str) -> JobView:
        while True:
            response = await self._request("GET", self.endpoints.job(job_id))
            if response.status_code == 200:
                return job_or_raise(response)
            if response.status_code not in (202, 503):
                raise api_error(response)
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
