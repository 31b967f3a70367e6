"""A batch's request counts, kept without reading a job: the set of its lines that ended,
as two bitmaps (succeeded, failed) in one key, `batch:{id}:counts`.

Sets, not counters, because an event may arrive twice (a redelivery, a job cancelled and
reported by two parties) and a line must count once: a bit set twice is still one bit. A
line in both maps counts as completed. 50,000 lines are two maps of 6 KiB.

Marks are group-committed: every mark made while a merge is on its way goes in the next one,
one guarded read-modify-write per batch per round trip (jobrelay.batching), so ten thousand
jobs ending cost a few hundred writes, not ten thousand.
"""

from __future__ import annotations

import base64
import time
from collections import defaultdict
from dataclasses import dataclass

from pydantic import BaseModel

from apps.intake.batches.shapes import RequestCounts
from jobrelay import keys
from jobrelay.batching import Coalescer
from jobrelay.state import State, Write

# Counts live as long as their batch's files.
_TTL_SECONDS = 30 * 24 * 3600


def _bits(text: str) -> int:
    return int.from_bytes(base64.b64decode(text), "little") if text else 0


def _text(bits: int) -> str:
    return base64.b64encode(bits.to_bytes((bits.bit_length() + 7) // 8, "little")).decode()


class _Doc(BaseModel):
    ok: str = ""
    failed: str = ""
    changed_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Tally:
    completed: int
    failed: int
    changed_at: float  # when a line last ended (Unix seconds); 0: none yet
    ended: int  # bitmap of every line that ended, succeeded or not

    def counts(self, total: int) -> RequestCounts:
        return RequestCounts(total=total, completed=self.completed, failed=self.failed)

    def has(self, line: int) -> bool:
        return bool(self.ended >> line & 1)


def _tally(doc: _Doc) -> Tally:
    ok, failed = _bits(doc.ok), _bits(doc.failed)
    return Tally(ok.bit_count(), (failed & ~ok).bit_count(), doc.changed_at, ok | failed)


@dataclass(frozen=True, slots=True)
class Mark:
    batch_id: str
    lines: tuple[int, ...]
    ok: bool


class BatchCounts:
    def __init__(self, state: State) -> None:
        self._state = state
        # One merge at a time: two would only race each other for the same keys.
        self._marks: Coalescer[Mark, Tally] = Coalescer(self._merge, lanes=1, largest=4096)

    async def mark(self, batch_id: str, lines: list[int], ok: bool) -> Tally:
        """Count `lines` as ended (succeeded if `ok`); the batch's tally after it."""
        return await self._marks(Mark(batch_id, tuple(lines), ok))

    async def read(self, batch_id: str) -> Tally:
        item = await self._state.get(keys.batch_counts(batch_id))
        return _tally(_Doc.model_validate_json(item.data) if item else _Doc())

    async def _merge(self, marks: list[Mark]) -> list[Tally | BaseException]:
        by_batch: dict[str, list[Mark]] = defaultdict(list)
        for mark in marks:
            by_batch[mark.batch_id].append(mark)
        tallies: dict[str, Tally | BaseException] = {}
        for batch_id, batch_marks in by_batch.items():
            try:
                tallies[batch_id] = await self._merge_one(batch_id, batch_marks)
            except Exception as exc:
                tallies[batch_id] = exc
        return [tallies[mark.batch_id] for mark in marks]

    async def _merge_one(self, batch_id: str, marks: list[Mark]) -> Tally:
        add_ok = add_failed = 0
        for mark in marks:
            bits = sum(1 << line for line in set(mark.lines))
            if mark.ok:
                add_ok |= bits
            else:
                add_failed |= bits

        def change(data: bytes | None) -> Write | None:
            doc = _Doc.model_validate_json(data) if data else _Doc()
            ok, failed = _bits(doc.ok), _bits(doc.failed)
            if ok | add_ok == ok and failed | add_failed == failed:
                return None  # every line was counted already (a redelivery)
            doc = _Doc(ok=_text(ok | add_ok), failed=_text(failed | add_failed))
            doc.changed_at = time.time()
            return Write(doc.model_dump_json(), _TTL_SECONDS)

        data, _ = await self._state.update(keys.batch_counts(batch_id), change)
        return _tally(_Doc.model_validate_json(data) if data else _Doc())
