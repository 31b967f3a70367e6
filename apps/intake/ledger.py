"""A tenant's quota ledger: what it has submitted lately and which of its jobs still wait.

Pure arithmetic, no I/O (apps/intake/quotas.py keeps one ledger per tenant in the state
store). Times are Unix seconds.

Submissions per minute use a sliding-window counter: the count of the current fixed minute
plus the previous minute's count weighted by how much of it still overlaps the last sixty
seconds. Unlike a fixed window it does not let a client send twice the limit across a minute
boundary, and unlike a log of timestamps it costs two integers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace

WINDOW_SECONDS = 60
# Float error on an exact boundary (80.00000000001 s) must not cost a client a whole second.
_EPSILON = 1e-9


def _ceil(seconds: float) -> int:
    return math.ceil(seconds - _EPSILON)


@dataclass(frozen=True)
class Ledger:
    minute: int = 0  # the current window: Unix time // WINDOW_SECONDS
    current: int = 0  # submissions counted in that window
    previous: int = 0  # submissions counted in the window before it
    # Jobs accepted and not yet seen leaving `queued`: job id -> when it was accepted.
    queued: dict[str, int] = field(default_factory=dict)
    checked: float = 0.0  # when `queued` was last verified against the job records

    @classmethod
    def load(cls, data: bytes | str | None) -> Ledger:
        if not data:
            return cls()
        raw = json.loads(data)
        return cls(
            minute=int(raw.get("minute", 0)),
            current=int(raw.get("current", 0)),
            previous=int(raw.get("previous", 0)),
            queued={str(k): int(v) for k, v in raw.get("queued", {}).items()},
            checked=float(raw.get("checked", 0.0)),
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "minute": self.minute,
                "current": self.current,
                "previous": self.previous,
                "queued": self.queued,
                "checked": self.checked,
            },
            separators=(",", ":"),
        )

    # Submissions per minute.

    def at(self, now: float) -> Ledger:
        """The same ledger with its windows moved to the minute of `now`."""
        minute = int(now // WINDOW_SECONDS)
        if minute == self.minute:
            return self
        previous = self.current if minute == self.minute + 1 else 0
        return replace(self, minute=minute, current=0, previous=previous)

    def used(self, now: float) -> float:
        """Submissions in the sixty seconds before `now`, as the sliding window estimates."""
        ledger = self.at(now)
        overlap = 1.0 - (now % WINDOW_SECONDS) / WINDOW_SECONDS
        return ledger.previous * overlap + ledger.current

    def remaining(self, now: float, limit: int) -> int:
        """How many more submissions `limit` allows right now."""
        return max(0, math.floor(limit - self.used(now) + _EPSILON))

    def retry_after(self, now: float, limit: int) -> int:
        """Whole seconds until one more submission fits under `limit` (0: it fits now)."""
        ledger = self.at(now)
        into = (now % WINDOW_SECONDS) / WINDOW_SECONDS  # fraction of this window gone
        room = limit - 1  # a submission fits while used() <= limit - 1
        if ledger.current <= room:
            if ledger.previous * (1.0 - into) <= room - ledger.current + _EPSILON:
                return 0
            # The previous window's weight must shrink to what is left of the room.
            frac = 1.0 - (room - ledger.current) / ledger.previous
            return max(1, _ceil((frac - into) * WINDOW_SECONDS))
        # This window alone is over: wait into the next, where it becomes the weighted one.
        frac = 1.0 - room / ledger.current
        return max(1, _ceil((1.0 - into + frac) * WINDOW_SECONDS))

    def reset_after(self, now: float) -> int:
        """Whole seconds until the whole limit is free again (nothing left in the window)."""
        ledger = self.at(now)
        left_in_window = WINDOW_SECONDS - now % WINDOW_SECONDS
        if ledger.current:
            return math.ceil(left_in_window + WINDOW_SECONDS)
        if ledger.previous:
            return math.ceil(left_in_window)
        return 0

    def count_submission(self, at: float) -> Ledger:
        """One more submission, made at `at`: now, or a moment ago (a replica merging the
        charges it made since its last write, after another replica moved the window on)."""
        minute = int(at // WINDOW_SECONDS)
        if minute == self.minute - 1:
            return replace(self, previous=self.previous + 1)
        if minute < self.minute - 1:
            return self  # out of every window already
        ledger = self.at(at)
        return replace(ledger, current=ledger.current + 1)

    # Jobs waiting.

    def waiting(self, now: float, lifetime: int) -> Ledger:
        """Without entries older than any queued job can be (a backstop against leaks)."""
        oldest = now - lifetime
        if all(added > oldest for added in self.queued.values()):
            return self
        return replace(self, queued={j: a for j, a in self.queued.items() if a > oldest})

    def add_job(self, job_id: str, now: float) -> Ledger:
        return replace(self, queued={**self.queued, job_id: int(now)})

    def without(self, job_ids: set[str]) -> Ledger:
        return replace(self, queued={j: a for j, a in self.queued.items() if j not in job_ids})
