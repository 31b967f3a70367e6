"""The blocking client: `Client().submit(...)`, `.wait(...)`, `.map(...)`.

It mirrors jobrelay.client.aio.AsyncClient method for method; the request building and the
answer parsing they share live in submission.py and responses.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from types import TracebackType
from typing import Any, Self

import httpx
from httpx_sse import SSEError, connect_sse

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
from jobrelay.client.urls import MAX_STREAM_RESUMES, Endpoints, Timer
from jobrelay.contract import JobView

log = logging.getLogger(__name__)


class Client:
    """A jobrelay API client. Thread-safe: `map` shares it between its threads."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        http: httpx.Client | None = None,
        use_events: bool = True,
    ) -> None:
        self.endpoints = Endpoints(settings or ClientSettings())
        self.use_events = use_events
        # The read timeout outlasts the stream's 15 s keep-alive; connect failures stay quick.
        self._http = http or httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.endpoints.headers)
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{method} {url}: {exc!r}") from exc

    def submit(self, submission: Submission, *, prefer_wait: int | None = None) -> JobView:
        """Send one job; answers at once (202) unless `prefer_wait` lets the server hold on."""
        kwargs = submission.request_kwargs(self.endpoints.headers)
        if prefer_wait:
            kwargs["headers"]["Prefer"] = f"wait={prefer_wait}"
        return job_or_raise(self._request("POST", self.endpoints.submit, **kwargs))

    def get(self, job_id: str) -> JobView:
        """The job as it is now, pending or final."""
        return job_or_raise(self._request("GET", self.endpoints.job(job_id)))

    def cancel(self, job_id: str) -> JobView:
        """Cancel a pending job; ApiError `job_finished` if it already ended."""
        return job_or_raise(self._request("DELETE", self.endpoints.job(job_id)))

    def stream(
        self, job_id: str, *, last_event_id: int | None = None, timeout: float | None = None
    ) -> Iterator[JobView]:
        """Each state of the job as it happens, ending with the final one.

        A dropped connection is resumed with `Last-Event-ID`, so no state is seen twice;
        StreamUnavailable if the stream cannot be read at all, WaitTimeout past `timeout`.
        """
        timer = Timer(timeout)
        seen = last_event_id
        failures = 0
        while True:
            try:
                for job, seq in self._read_stream(job_id, seen, timer):
                    seen, failures = seq, 0
                    yield job
                    if job.status.terminal:
                        return
                    timer.check(job_id)
            except (httpx.TransportError, SSEError) as exc:
                timer.check(job_id)
                failures += 1
                if seen is None or failures > MAX_STREAM_RESUMES:
                    raise StreamUnavailable(f"{self.endpoints.events(job_id)}: {exc!r}") from exc
                log.info("event stream of %s dropped after seq %s; resuming", job_id, seen)
            else:
                # The server ended the stream before a final state (a restart, say): resume.
                failures += 1
                if failures > MAX_STREAM_RESUMES:
                    raise StreamUnavailable(f"{self.endpoints.events(job_id)} keeps ending early")
                log.info("event stream of %s ended early after seq %s; resuming", job_id, seen)

    def _read_stream(
        self, job_id: str, last_seen: int | None, timer: Timer
    ) -> Iterator[tuple[JobView, int]]:
        headers = dict(self.endpoints.headers)
        if last_seen is not None:
            headers["Last-Event-ID"] = str(last_seen)
        url = self.endpoints.events(job_id)
        with connect_sse(self._http, "GET", url, headers=headers, timeout=timer.read()) as source:
            if source.response.status_code != 200:
                source.response.read()
                raise _stream_error(url, api_error(source.response))
            for event in source.iter_sse():
                if is_job_event(event):
                    yield job_of_event(event), int(event.id)

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
                    job = state
            except StreamUnavailable as exc:
                log.info("falling back to polling: %s", exc)
        if job is None or not job.status.terminal:
            job = self._poll(job_id, timer)
        return checked(job) if check else job

    def _poll(self, job_id: str, timer: Timer) -> JobView:
        while True:
            response = self._request("GET", self.endpoints.job(job_id))
            if response.status_code == 200:
                return job_or_raise(response)
            if response.status_code not in (202, 503):  # 503: the store is down for a moment
                raise api_error(response)
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


def _stream_error(url: str, error: JobrelayError) -> JobrelayError:
    # An unknown job is an answer, not a broken stream: polling would only say 404 again.
    if error.code == "job_not_found":
        return error
    return StreamUnavailable(f"{url}: {error}")
