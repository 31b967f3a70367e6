"""One interface for every shared limit: intake's tenant quotas (apps/intake/quotas.py) and
the worker's per-model limits (apps/worker/slots.py, apps/worker/rate_window.py).

A limit admits a subject (a tenant's submit, a call to a model) or refuses it with
LimitReached, which says when it may fit. Each keeps its numbers in the state store, so every
replica keeps to the same ones. A caller that can wait passes a deadline, and the limit waits
for room until then; one that must answer at once (a submit) passes None and is refused at
once. What was admitted is given back with `release()`; a limit that counts (a quota, a rate)
has nothing to give back, since what it counted stays spent.

Adding a limit: one module with a class that has `admit`, used where its subject goes by.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, TypeVar


class LimitReached(Exception):
    """No room now (or, for a caller that waited, before its deadline)."""

    def __init__(self, code: str, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.code = code  # stable, for clients and job errors: e.g. `rate_limited`
        self.message = message
        self.retry_after = retry_after  # seconds until the subject may fit


class Admission(Protocol):
    def release(self) -> None:
        """Give back what was held; nothing for a limit that counts."""


Subject = TypeVar("Subject", contravariant=True)
Admitted = TypeVar("Admitted", bound=Admission, covariant=True)


class Limit(Protocol[Subject, Admitted]):
    async def admit(self, subject: Subject, deadline: datetime | None) -> Admitted:
        """Admitted, once there is room: at once with `deadline` None; LimitReached if not."""
        ...


class Counted:
    """What a counting limit admits: nothing to give back."""

    def release(self) -> None:
        return None
