"""Every key jobrelay writes in the state store, built in one place.

The state component uses `keyPrefix: name`, so intake, worker and status share one key space;
a key here means the same thing to every app. Prefixes end in a colon so that no prefix is
the start of another.
"""

from __future__ import annotations

import hashlib

# A job's record: status, times, input, params and result (jobrelay.store).
_JOB = "job:"
# An uploaded file, in chunks `file:{job_id}:{n}` (jobrelay.files).
_FILE = "file:"
# `Idempotency-Key`s, per tenant, hashed: a client's key may be any text (apps/intake).
_IDEMPOTENCY = "idem:"
# A tenant's quota ledger (apps/intake/quotas.py).
_QUOTA = "quota:"
# A model profile's shared limits (apps/worker/slots.py, rate_window.py): one key per
# concurrency slot, one per rate window.
_LIMIT = "limit:"
# The dead-lettered jobs of one tenant, for the admin routes (jobrelay.dead_letters).
_DEAD_LETTERS = "dead-letters:"


def job(job_id: str) -> str:
    return f"{_JOB}{job_id}"


def job_id_of(key: str) -> str:
    return key.removeprefix(_JOB)


def file(job_id: str) -> str:
    """The prefix of an upload's chunks."""
    return f"{_FILE}{job_id}"


def file_chunk(file_key: str, index: int) -> str:
    return f"{file_key}:{index}"


def idempotency(tenant: str, client_key: str) -> str:
    digest = hashlib.sha256(client_key.encode()).hexdigest()  # any text, of a fixed length
    return f"{_IDEMPOTENCY}{tenant}:{digest}"


def quota(tenant: str) -> str:
    """A tenant's quota ledger: what every intake replica charged it."""
    return f"{_QUOTA}{tenant}"


def limit_slot(profile: str, index: int) -> str:
    """One of a profile's `max_concurrency` slots, held by one call at a time."""
    return f"{_LIMIT}{profile}:slot:{index}"


def rate_window(profile: str, minute: int) -> str:
    """A profile's requests and tokens counted in one minute (since the epoch)."""
    return f"{_LIMIT}{profile}:rate:{minute}"


def dead_letters(tenant: str) -> str:
    return f"{_DEAD_LETTERS}{tenant}"
