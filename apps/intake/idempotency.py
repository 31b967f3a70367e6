"""`Idempotency-Key`: the same key with the same request returns the same job, never a second
one, even when the two requests race; the same key with a different request is refused.

The key is claimed with an insert-if-absent before the job is published and stored, so
exactly one of two racing requests wins, and the loser answers with the winner's job without
having published anything. A request that finds the key's job missing past a grace fences
that job out before taking the key over (apps/intake/submission.py), so the slow owner can
no longer store it: one key never runs two jobs. Keys live as long as their job can.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

from pydantic import BaseModel

from jobrelay import keys
from jobrelay.conflicts import Conflict, Contended, KeyTaken
from jobrelay.errors import DAPR_ERRORS
from jobrelay.state import State, Write

MAX_KEY_LENGTH = 255


class InvalidKey(Exception):
    """The Idempotency-Key is empty or too long."""

    code = "invalid_idempotency_key"


class KeyReused(Exception):
    """The key was used for a different request."""

    code = "idempotency_key_reused"


class KeyBusy(Exception):
    """The key is changing hands (expiring, or taken over): a retry finds where it went."""

    code = "idempotency_key_busy"


class KeyClaim(BaseModel):
    job_id: str
    fingerprint: str


def fingerprint(request: dict[str, Any]) -> str:
    """A digest of what was asked, independent of JSON key order and spacing."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")


async def claim(
    state: State, tenant: str, key: str, claim: KeyClaim, ttl_seconds: int
) -> str | None:
    """None if this request now owns `key`; else the job id of the request that owns it.

    KeyReused if the key was used for a different request.
    """
    try:
        await state.insert(keys.idempotency(tenant, key), claim.model_dump_json(), ttl_seconds)
        return None
    except KeyTaken:
        pass
    item = await state.get(keys.idempotency(tenant, key))
    if item is None:  # expired between the two calls: rare enough to ask for a retry
        raise KeyBusy("this Idempotency-Key is changing; retry")
    owner = KeyClaim.model_validate_json(item.data)
    if owner.fingerprint != claim.fingerprint:
        raise KeyReused("this Idempotency-Key was already used for a different request")
    return owner.job_id


async def take_over(
    state: State, tenant: str, key: str, dead_owner: str, claim: KeyClaim, ttl_seconds: int
) -> None:
    """Point `key` at `claim`'s job instead of `dead_owner`'s, which was fenced out (it can
    never be stored now, so it can never run: jobrelay.store).

    Guarded: of several requests taking over at once, one wins; the others are told to
    retry, and will then find the winner's job.
    """
    busy = KeyBusy("this Idempotency-Key is changing; retry")

    def moved(data: bytes | None) -> Write:
        current = KeyClaim.model_validate_json(data) if data else None
        if (
            current is None
            or current.job_id != dead_owner
            or current.fingerprint != claim.fingerprint
        ):
            raise busy
        return Write(claim.model_dump_json(), ttl_seconds)

    try:
        await state.update(keys.idempotency(tenant, key), moved)
    except Contended as exc:
        raise busy from exc


async def release(state: State, tenant: str, key: str, job_id: str) -> None:
    """Free `key` if it still names `job_id`, a job that was refused and never stored.

    Without this, a client retrying a refused submit with the same key (as it should) would
    find the key taken by a job that never existed and wait out the owner's grace first.
    Guarded: a key another request has taken over since is left alone.
    """
    item = await state.get(keys.idempotency(tenant, key))
    if item is None or KeyClaim.model_validate_json(item.data).job_id != job_id:
        return
    # Refused: taken over meanwhile. Failed: left to expire, as a dead owner's key would be.
    with contextlib.suppress(Conflict, *DAPR_ERRORS):
        await state.delete(keys.idempotency(tenant, key), etag=item.etag)
