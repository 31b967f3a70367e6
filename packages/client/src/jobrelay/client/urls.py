"""The API's addresses and headers, and the clock a wait runs against."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import quote

from jobrelay.client.errors import WaitTimeout
from jobrelay.client.settings import ClientSettings

# A stream read waits at most this long for the next event (or keep-alive comment, which
# the server sends every 15 s) before the connection counts as dead and is resumed.
STREAM_READ_TIMEOUT_SECONDS = 30.0
# Consecutive reconnects of a stream that yield nothing new before `wait` gives up on the
# stream and polls instead (a proxy that buffers or cuts streams, say).
MAX_STREAM_RESUMES = 3


class Endpoints:
    def __init__(self, settings: ClientSettings) -> None:
        self.submit = f"{settings.intake_url.rstrip('/')}/v1/jobs"
        self._jobs = f"{settings.status_url.rstrip('/')}/v1/jobs"
        self.jobs = self._jobs  # GET: the caller's jobs (a listing)
        self.headers: dict[str, str] = {}
        if settings.api_key is not None:
            self.headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"

    def job(self, job_id: str) -> str:
        # Quoted so an id pasted with a stray slash cannot reach another route.
        return f"{self._jobs}/{quote(job_id, safe='')}"

    def events(self, job_id: str) -> str:
        return f"{self.job(job_id)}/events"


@dataclass
class Timer:
    """A caller's overall timeout (None: wait for ever), measured on the monotonic clock."""

    timeout: float | None
    started: float = field(default_factory=time.monotonic)

    @property
    def remaining(self) -> float | None:
        if self.timeout is None:
            return None
        return self.timeout - (time.monotonic() - self.started)

    @property
    def expired(self) -> bool:
        remaining = self.remaining
        return remaining is not None and remaining <= 0

    def check(self, job_id: str) -> None:
        """WaitTimeout once the time is up."""
        if self.expired:
            raise WaitTimeout(job_id, self.timeout or 0.0)

    def pause(self, seconds: float) -> float:
        """`seconds`, cut short to what is left, so a last poll happens right at the end."""
        remaining = self.remaining
        return seconds if remaining is None else max(min(seconds, remaining), 0.0)

    def read(self) -> float:
        """Read timeout for the next stream read: the keep-alive bound, or what is left."""
        remaining = self.remaining
        if remaining is None:
            return STREAM_READ_TIMEOUT_SECONDS
        return max(min(remaining, STREAM_READ_TIMEOUT_SECONDS), 0.01)
