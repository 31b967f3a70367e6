"""What the chaos tests submit and what they read back to judge the outcome.

Jobs go in as a client sends them (HTTP to intake). The outcome is read where it is true: the
job records and the `jobs` stream in Redis, read directly so a check does not depend on the
services under test being up (the records are ciphertext there, decrypted here with the
stack's key, as daprd would: `decrypt`), and the status changes each app wrote, from the one
log line it writes per change; the final answer of each job is also read through the status
API, as a client would.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jobrelay.contract import Priority
from jobrelay.lanes import Lanes
from tests.chaos.launcher import Launcher
from tests.integration.stack import STATE_KEY

log = logging.getLogger(__name__)

# The topic (a Redis stream) the `default` tenant's jobs go to: the tenant the suite submits as.
DEFAULT_LANE = Lanes().topic(Priority.NORMAL, "default")
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
# Records of many jobs read in one round trip (a Lua script: one HGET per key).
_READ_RECORDS = (
    "local out = {} for i, k in ipairs(KEYS) do "
    "out[i] = redis.call('HGET', k, 'data') or '' end return out"
)
# The `data` field of every entry of a stream after ARGV[1] (Dapr's Redis pub/sub stores the
# CloudEvent there).
_READ_STREAM = (
    "local out = {} for _, e in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+')) do "
    "local f = e[2] for i = 1, #f, 2 do if f[i] == 'data' then "
    "table.insert(out, f[i + 1]) end end end return out"
)
_BATCH = 200


@dataclass
class Job:
    id: str
    text: str  # unique per job, so the model double counts its calls
    submitted_at: float  # time.monotonic()


@dataclass
class Submitted:
    jobs: list[Job] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # non-202 answers, by status/error


def embed_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"task": "embed", "input": {"text": text}, **extra}


def unique_text(label: str) -> str:
    return f"chaos {label} {uuid.uuid4().hex}"


def submit(launcher: Launcher, bodies: Iterable[dict[str, Any]], threads: int = 4) -> Submitted:
    """POST every body to intake; the 202s are the accepted jobs, anything else is counted."""
    result = Submitted()

    def one(client: httpx.Client, body: dict[str, Any]) -> None:
        try:
            resp = client.post(f"{launcher.url('intake')}/v1/jobs", json=body)
        except httpx.HTTPError as exc:
            result.refused[type(exc).__name__] += 1
            return
        if resp.status_code != 202:
            result.refused[f"{resp.status_code}"] += 1
            return
        result.jobs.append(Job(resp.json()["id"], body["input"]["text"], time.monotonic()))

    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda b: one(client, b), bodies))
    return result


# What a key fenced by a worker holds (jobrelay.store): a job that was never accepted.
FENCED = {"never_accepted": True}


def decrypt(stored: str, key_hex: str = STATE_KEY) -> bytes:
    """A value as daprd stores it in an encrypted store, in the clear: daprd's format is
    base64(12-byte nonce + AES-GCM ciphertext) + "||" + the key's secret name."""
    sealed = base64.b64decode(stored.rsplit("||", 1)[0])
    return AESGCM(bytes.fromhex(key_hex)).decrypt(sealed[:12], sealed[12:], None)


def stored_values(launcher: Launcher, keys: list[str]) -> dict[str, Any]:
    """The decrypted JSON under each state key (None: absent), read from Redis."""
    found: dict[str, Any] = {}
    for start in range(0, len(keys), _BATCH):
        batch = keys[start : start + _BATCH]
        redis_keys = [f"statestore||{k}" for k in batch]
        out = launcher.redis_raw("EVAL", _READ_RECORDS, str(len(redis_keys)), *redis_keys)
        lines = out.split("\n")[: len(batch)]
        for key, line in zip(batch, lines, strict=True):
            found[key] = json.loads(decrypt(line.strip())) if line.strip() else None
    return found


def records(launcher: Launcher, ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """The stored record of each job (None: no record, or a fenced key), read from Redis."""
    values = stored_values(launcher, [f"job:{i}" for i in ids])
    return {i: None if v == FENCED else v for i, v in zip(ids, values.values(), strict=True)}


def fenced(launcher: Launcher, ids: list[str]) -> list[str]:
    """The jobs among `ids` whose key a worker fenced (their record never came)."""
    values = stored_values(launcher, [f"job:{i}" for i in ids])
    return [i for i, v in zip(ids, values.values(), strict=True) if v == FENCED]


def wait_terminal(
    launcher: Launcher, ids: list[str], timeout: float
) -> tuple[dict[str, dict[str, Any] | None], float]:
    """Records once every job is terminal, or as they are at `timeout`; and the seconds
    waited."""
    started = time.monotonic()
    while True:
        current = records(launcher, ids)
        pending = [i for i, r in current.items() if r is None or r["status"] not in TERMINAL]
        waited = time.monotonic() - started
        if not pending or waited > timeout:
            return current, waited
        time.sleep(0.5)


def stream_data(launcher: Launcher, stream: str, after: str | None = None) -> list[dict[str, Any]]:
    """The payload of every message still in `stream` (the CloudEvent's `data`), or of those
    after the message id `after`."""
    start = "-" if after is None else f"({after}"
    out = launcher.redis_raw("EVAL", _READ_STREAM, "1", stream, start)
    payloads: list[dict[str, Any]] = []
    for line in out.splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        data = event.get("data", event) if isinstance(event, dict) else event
        if isinstance(data, str):
            data = json.loads(data)
        if isinstance(data, dict):
            payloads.append(data)
    return payloads


def transitions(launcher: Launcher) -> list[dict[str, Any]]:
    """Every status change an app wrote, in the order each app logged them: the one line per
    transition (jobrelay.logs) from the logs of every run of intake, worker and status. A
    change written just before its writer was SIGKILLed may lack its line, so this can miss
    a change, never invent one."""
    seen = []
    for app in ("intake", "worker", "status"):
        path = launcher.procs[app].log_path
        for line in path.read_text(errors="replace").splitlines():
            if '"jobrelay.jobs"' not in line or not line.startswith("{"):
                continue
            entry = json.loads(line)
            if entry.get("logger") == "jobrelay.jobs":
                seen.append(entry)
    return seen


def terminal_transitions(launcher: Launcher) -> dict[str, set[tuple[int, str]]]:
    """Per job, the distinct (seq, status) of every terminal status written for it."""
    seen: dict[str, set[tuple[int, str]]] = {}
    for change in transitions(launcher):
        if change["status"] in TERMINAL:
            seen.setdefault(change["job_id"], set()).add((int(change["seq"]), change["status"]))
    return seen


def changes_after_terminal(launcher: Launcher) -> dict[str, list[tuple[int, str]]]:
    """Per job, any change whose seq is above the seq of its first terminal one: a job that
    left a terminal status (which must never happen)."""
    changes = transitions(launcher)
    first_terminal: dict[str, int] = {}
    for change in changes:
        if change["status"] in TERMINAL:
            job, seq = change["job_id"], int(change["seq"])
            first_terminal[job] = min(seq, first_terminal.get(job, seq))
    later: dict[str, list[tuple[int, str]]] = {}
    for change in changes:
        job, seq = change["job_id"], int(change["seq"])
        if job in first_terminal and seq > first_terminal[job]:
            later.setdefault(job, []).append((seq, change["status"]))
    return later


def message_job_ids(
    launcher: Launcher, stream: str = DEFAULT_LANE, after: str | None = None
) -> list[str]:
    """The job id every message on `stream` (after the message id `after`) names."""
    ids = []
    for data in stream_data(launcher, stream, after):
        job_id = data.get("job_id") or data.get("id")
        if isinstance(job_id, str):
            ids.append(job_id)
    return ids


def client_view(launcher: Launcher, ids: list[str]) -> Counter[str]:
    """What a client polling the status API gets for each job, by HTTP status and job status."""
    seen: Counter[str] = Counter()
    with httpx.Client(timeout=10) as client:
        for job_id in ids:
            resp = client.get(f"{launcher.url('status')}/v1/jobs/{job_id}")
            status = resp.json().get("status") if resp.status_code in (200, 202) else None
            seen[f"{resp.status_code} {status}"] += 1
    return seen


def calls_per_job(launcher: Launcher, jobs: list[Job]) -> Counter[int]:
    """How many jobs reached the model how many times (counted at the model double)."""
    return Counter(launcher.double.calls(job.text) for job in jobs)
