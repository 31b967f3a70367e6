"""A model profile's `requests_per_minute` and `tokens_per_minute`, shared by every worker
replica through the Dapr state store: a Limit (jobrelay.limits) that counts each call.

A counter per profile and minute (`limit:{profile}:rate:{minute}`, requests and tokens),
counted up through the state layer's read-modify-write. Over the limit, a call waits for the
next minute, holding no slot meanwhile (apps/worker/gateway.py asks this limit first), and
gives up with LimitReached when the next minute is past the job's deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from apps.worker.profiles import ModelProfile
from jobrelay import keys
from jobrelay.limits import Counted, LimitReached
from jobrelay.state import State, Write

log = logging.getLogger(__name__)

# A minute's counter outlives its minute, for the calls counted near its end.
_RATE_WINDOW_TTL_SECONDS = 120


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One call to a profile, of about `tokens` tokens."""

    profile: ModelProfile
    tokens: int


class _Full(Exception):
    """This minute has no room (raised inside the read-modify-write, which then writes none)."""


class RateWindows:
    def __init__(self, state: State) -> None:
        self._state = state

    async def admit(self, request: ModelRequest, deadline: datetime | None) -> Counted:
        """The call counted in this minute's window, once one has room."""
        profile, tokens = request.profile, request.tokens
        rpm, tpm = profile.requests_per_minute, profile.tokens_per_minute
        if rpm is None and tpm is None:
            return Counted()
        while True:
            minute = int(time.time() // 60)

            def count(data: bytes | None) -> Write | None:
                window = json.loads(data) if data else {}
                requests, used = window.get("requests", 0), window.get("tokens", 0)
                if (rpm is not None and requests + 1 > rpm) or (
                    tpm is not None and used + tokens > tpm and used > 0
                ):
                    raise _Full
                counted = {"requests": requests + 1, "tokens": used + tokens}
                return Write(json.dumps(counted), _RATE_WINDOW_TTL_SECONDS)

            try:
                await self._state.update(keys.rate_window(profile.name, minute), count)
                return Counted()
            except _Full:
                next_minute = (minute + 1) * 60
                wait = max(next_minute - time.time(), 0.0)
                if deadline is not None and next_minute >= deadline.timestamp():
                    raise LimitReached(
                        "model_rate_limited",
                        f"{profile.name}: rate limit until after the deadline",
                        wait,
                    ) from None
                log.info("profile=%s rate limit reached; waiting %.1f s", profile.name, wait)
                await asyncio.sleep(wait)
