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
# A tenant's job index, for GET /v1/jobs (jobrelay.job_index): a head and sealed pages.
_INDEX_HEAD = "jobs-index-head:"
_INDEX_PAGE = "jobs-index-page:"
# The text a streaming task's attempt streamed, in chunks `delta:{job_id}:{seq}:{n}`, `seq`
# being its `running` change's (jobrelay.deltas).
_DELTA = "delta:"
# OpenAI-style files and batches (apps/intake/batches): a file's object (its chunks are
# `file:{file_id}:{n}`), a batch's object, its fan-out cursor, its counts, and the lines
# each fan-out step refused.
_OPENAI_FILE = "oafile:"
_BATCH = "batch:"


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


def index_head(tenant: str) -> str:
    """A tenant's job index: the page being filled and its number (and, until the next
    append moves it to its own key, the page it sealed last)."""
    return f"{_INDEX_HEAD}{tenant}"


def index_page(tenant: str, page: int) -> str:
    """A sealed page of a tenant's job index (never written again once sealed)."""
    return f"{_INDEX_PAGE}{tenant}:{page}"


def delta(job_id: str, seq: int, n: int) -> str:
    """Chunk `n` (from 1) of the text streamed while the job was `running` at `seq`."""
    return f"{_DELTA}{job_id}:{seq}:{n}"


def openai_file(file_id: str) -> str:
    return f"{_OPENAI_FILE}{file_id}"


def batch(batch_id: str) -> str:
    return f"{_BATCH}{batch_id}"


def batch_fanout(batch_id: str) -> str:
    return f"{_BATCH}{batch_id}:fanout"


def batch_counts(batch_id: str) -> str:
    return f"{_BATCH}{batch_id}:counts"


def batch_refused(batch_id: str, first_line: int) -> str:
    return f"{_BATCH}{batch_id}:refused:{first_line}"


def batches_of(tenant: str) -> str:
    """A tenant's batch ids, newest first (`GET /v1/batches`)."""
    return f"{_BATCH}index:{tenant}"
