"""What the blocking and the asyncio clients share: every request they send, built once, and
every decision about an answer or a stream. Each client only sends (httpx.Client or
httpx.AsyncClient) and waits its own way, so the two cannot drift apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from jobrelay.client.errors import ConnectionFailed, JobrelayError, StreamUnavailable
from jobrelay.client.listing import JobFilter
from jobrelay.client.responses import api_error, job_or_raise
from jobrelay.client.settings import ClientSettings
from jobrelay.client.submission import Submission
from jobrelay.client.urls import MAX_STREAM_RESUMES, Endpoints
from jobrelay.contract import JobView

log = logging.getLogger("jobrelay.client")

# The read timeout outlasts the stream's 15 s keep-alive; connect failures stay quick.
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=5.0)

Http = TypeVar("Http", httpx.Client, httpx.AsyncClient)


class ClientCore(Generic[Http]):
    """What both clients hold: the requests they send, whether `wait` follows the event
    stream (else it polls), and the HTTP client that sends (their own unless given one)."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        http: Http | None = None,
        use_events: bool = True,
    ) -> None:
        self.requests = Requests(settings)
        self.use_events = use_events
        self._http: Http = http or self._new_http()

    def _new_http(self) -> Http:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Call:
    """One request: what `httpx.Client.request` (or the async one) takes."""

    method: str
    url: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def failed(self, exc: httpx.TransportError) -> ConnectionFailed:
        return ConnectionFailed(f"{self.method} {self.url}: {exc!r}")


class Requests:
    """The API's requests, for the settings' addresses and credentials."""

    def __init__(self, settings: ClientSettings | None) -> None:
        self.endpoints = Endpoints(settings or ClientSettings())

    def _call(self, method: str, url: str, **kwargs: Any) -> Call:
        kwargs.setdefault("headers", self.endpoints.headers)
        return Call(method, url, kwargs)

    def submit(self, submission: Submission, prefer_wait: int | None) -> Call:
        kwargs = submission.request_kwargs(self.endpoints.headers)
        if prefer_wait:
            kwargs["headers"]["Prefer"] = f"wait={prefer_wait}"
        return self._call("POST", self.endpoints.submit, **kwargs)

    def get(self, job_id: str) -> Call:
        return self._call("GET", self.endpoints.job(job_id))

    def list(self, filters: JobFilter) -> Call:
        return self._call("GET", self.endpoints.jobs, params=filters.params())

    def page(self, next_url: str) -> Call:
        """A listing's next page: the `next` URL as the server gave it (filters included)."""
        return self._call("GET", next_url)

    def cancel(self, job_id: str) -> Call:
        return self._call("DELETE", self.endpoints.job(job_id))

    def events(self, job_id: str, last_seen: str | int | None) -> Call:
        headers = dict(self.endpoints.headers)
        if last_seen is not None:
            headers["Last-Event-ID"] = str(last_seen)
        return Call("GET", self.endpoints.events(job_id), {"headers": headers})


def polled(response: httpx.Response) -> JobView | None:
    """The final job from a poll's answer; None while it is pending (or the store is down
    for a moment, 503); the API's error for anything else."""
    if response.status_code == 200:
        return job_or_raise(response)
    if response.status_code not in (202, 503):
        raise api_error(response)
    return None


def stream_refused(url: str, response: httpx.Response) -> JobrelayError:
    """Why a stream could not be opened. An unknown job is an answer, not a broken stream:
    polling would only say 404 again."""
    error = api_error(response)
    if error.code == "job_not_found":
        return error
    return StreamUnavailable(f"{url}: {error}")


@dataclass
class Resumes:
    """A stream's reconnects: the last event seen, and how many reconnects in a row brought
    nothing new. Past MAX_STREAM_RESUMES, or a drop before any event (nothing to resume
    from), the stream is given up with StreamUnavailable and the caller polls instead."""

    url: str
    seen: str | int | None  # the last event id: a status's `seq`, or a delta's `seq.n`
    failures: int = 0

    def got(self, event_id: str) -> None:
        self.seen, self.failures = event_id, 0

    def dropped(self, exc: Exception) -> None:
        self.failures += 1
        if self.seen is None or self.failures > MAX_STREAM_RESUMES:
            raise StreamUnavailable(f"{self.url}: {exc!r}") from exc
        log.info("event stream %s dropped after seq %s; resuming", self.url, self.seen)

    def ended_early(self) -> None:
        # The server ended the stream before a final state (a restart, say): resume.
        self.failures += 1
        if self.failures > MAX_STREAM_RESUMES:
            raise StreamUnavailable(f"{self.url} keeps ending early")
        log.info("event stream %s ended early after seq %s; resuming", self.url, self.seen)
