"""The ids of a job's event stream: status changes and streamed deltas on one order.

A status event's id is the record's `seq` ("7"), as it always was. A delta's id is the `seq`
of the `running` change it was streamed in, a dot, and its number in that attempt ("7.3").
Ordered as (seq, delta) pairs, with a status event as delta 0, ids increase along the stream:
`running` 7, its deltas 7.1, 7.2, ..., then the terminal event 8. So `Last-Event-ID` says
exactly what a client has seen, whether it was a status event or a delta, and an id from
before deltas existed (plain digits) still means what it meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ASCII digits, far fewer than 19 of them: `str.isdigit` also takes "²" and other digits
# int() refuses, and int() refuses more than 4,300 digits.
_ID = re.compile(r"([0-9]{1,18})(?:\.([0-9]{1,18}))?", re.ASCII)


@dataclass(frozen=True, slots=True, order=True)
class EventId:
    seq: int
    delta: int = 0  # 0: the status event itself; n >= 1: the n-th delta streamed at `seq`

    def __str__(self) -> str:
        return str(self.seq) if self.delta == 0 else f"{self.seq}.{self.delta}"

    @classmethod
    def parse(cls, text: str | None) -> EventId | None:
        """The id a client sent back; None for a missing or malformed one."""
        if text is None:
            return None
        found = _ID.fullmatch(text)
        if found is None:
            return None
        return cls(int(found[1]), int(found[2] or 0))


# Nothing seen yet: the stream starts with the job as it is now.
NOTHING_SEEN = EventId(-1)
