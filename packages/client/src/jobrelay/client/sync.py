"""The blocking client: `Client().submit(...)`, `.wait(...)`, `.map(...)`.

It mirrors jobrelay.client.aio.AsyncClient method for method; the requests, and what an
answer or a stream means, come from core.py for both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from types import TracebackType
from typing import Self

import httpx
from httpx_sse import SSEError, connect_sse

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
from jobrelay.client.urls import Timer
from jobrelay.contract import JobView

log = logging.getLogger(__name__)


class Client(ClientCore[httpx.Client]):
    """A jobrelay API client. Thread-safe: `map` shares it between its threads.

    `Client(settings=None, *, http=None, use_events=True)`: settings from the environment
    unless given (ClientSettings), an httpx.Client of its own unless given one.
    """

    def _new_http(self) -> httpx.Client:
        return httpx.Client(timeout=HTTP_TIMEOUT)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call) -> httpx.Response:
        try:
            return self._http.request(call.method, call.url, **call.kwargs)
        except httpx.TransportError as exc:
            raise call.failed(exc) from exc

    def submit(self, submission: Submission, *, prefer_wait: int | None = None) -> JobView:
        """Send one job; answers at once (202) unless `prefer_wait` lets the server hold on."""
        return job_or_raise(self._send(self.requests.submit(submission, prefer_wait)))

    def get(self, job_id: str) -> JobView:
        """The job as it is now, pending or final."""
        return job_or_raise(self._send(self.requests.get(job_id)))

    def list(self, filters: JobFilter | None = None) -> Iterator[JobView]:
        """Your jobs, newest first, through every page (one request per `page_size`
        results, made as the iteration gets there): `for job in client.list(JobFilter(
        status=["succeeded"])): ...`."""
        response = self._send(self.requests.list(filters or JobFilter()))
        while True:
            page = page_or_raise(response)
            yield from page.results
            if page.next is None:
                return
            response = self._send(self.requests.page(page.next))

    def cancel(self, job_id: str) -> JobView:
        """Cancel a pending job; ApiError `job_finished` if it already ended."""
        return job_or_raise(self._send(self.requests.cancel(job_id)))

    def stream(
        self,
        job: str | JobView,
        *,
        last_event_id: str | int | None = None,
        timeout: float | None = None,
    ) -> Iterator[StreamEvent]:
        """Each state of the job as it happens, ending with the final one; for chat and
        summarize, a Delta of the text between `running` and the end, as the model writes.

        A dropped connection is resumed with `Last-Event-ID`, so no state or text is seen
        twice or missed; StreamUnavailable if the stream cannot be read at all, WaitTimeout
        past `timeout`.
        """
        job_id = job if isinstance(job, str) else job.id
        timer = Timer(timeout)
        resumes = Resumes(self.requests.endpoints.events(job_id), last_event_id)
        while True:
            try:
                for event, event_id in self._read_stream(job_id, resumes.seen, timer):
                    resumes.got(event_id)
                    yield event
                    if isinstance(event, JobView) and event.status.terminal:
                        return
                    timer.check(job_id)
            except (httpx.TransportError, SSEError) as exc:
                timer.check(job_id)
                resumes.dropped(exc)
            else:
                resumes.ended_early()

    def _read_stream(
        self, job_id: str, last_seen: str | int | None, timer: Timer
    ) -> Iterator[tuple[StreamEvent, str]]:
        call = self.requests.events(job_id, last_seen)
        with connect_sse(
            self._http, call.method, call.url, timeout=timer.read(), **call.kwargs
        ) as source:
            if source.response.status_code != 200:
                source.response.read()
                raise stream_refused(call.url, source.response)
            for event in source.iter_sse():
                if (seen := stream_event(event)) is not None:
                    yield seen

    def wait(self, job_id: str, *, timeout: float | None = None, check: bool = True) -> JobView:
        """The job once final: over the event stream, else by polling as Retry-After says.

        With `check` (the default) a job that did not succeed raises JobFailed, carrying its
        error code; without, the final job is returned whatever its status.
        """
        timer = Timer(timeout)
        job: JobView | None = None
        if self.use_events:
            try:
                for state in self.stream(job_id, timeout=timeout):
                    if isinstance(state, JobView):
                        job = state
            except StreamUnavailable as exc:
                log.info("falling back to polling: %s", exc)
        if job is None or not job.status.terminal:
            job = self._poll(job_id, timer)
        return checked(job) if check else job

    def _poll(self, job_id: str, timer: Timer) -> JobView:
        while True:
            response = self._send(self.requests.get(job_id))
            if (job := polled(response)) is not None:
                return job
            timer.check(job_id)
            time.sleep(timer.pause(retry_after(response)))

    def run(self, submission: Submission, *, timeout: float | None = None) -> JobView:
        """Submit and wait: the succeeded job, or JobFailed."""
        return self.wait(self.submit(submission).id, timeout=timeout)

    def map(
        self,
        submissions: Iterable[Submission],
        *,
        concurrency: int = 8,
        timeout: float | None = None,
    ) -> Iterator[Outcome]:
        """Run many jobs, at most `concurrency` at a time, yielding each as it finishes.

        Inputs are read lazily, so a generator of a million lines holds only `concurrency`
        of them. Outcomes come in finishing order; `Outcome.index` is the input's position.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        inputs = enumerate(submissions)
        with ThreadPoolExecutor(concurrency, thread_name_prefix="jobrelay-map") as pool:
            running: set[Future[Outcome]] = set()
            try:
                while True:
                    for index, submission in inputs:
                        running.add(pool.submit(self._outcome, index, submission, timeout))
                        if len(running) >= concurrency:
                            break
                    if not running:
                        return
                    done, running = wait_futures(running, return_when=FIRST_COMPLETED)
                    yield from (future.result() for future in done)
            finally:
                for future in running:
                    future.cancel()

    def _outcome(self, index: int, submission: Submission, timeout: float | None) -> Outcome:
        try:
            job = self.submit(submission)
            if not job.status.terminal:
                job = self.wait(job.id, timeout=timeout, check=False)
        except JobrelayError as exc:
            return Outcome(index, submission, error=exc)
        return Outcome(index, submission, job=job)
