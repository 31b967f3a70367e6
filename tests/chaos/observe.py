"""What the chaos tests submit and what they read back to judge the outcome.

Jobs go in as a client sends them (HTTP to intake). The outcome is read where it is true: the
job records and the `job-events` and `jobs` streams in Redis, read directly so a check does
not depend on the services under test being up; the final answer of each job is also read
through the status API, as a client would.
"""

from __future__ import annotations

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

from tests.chaos.launcher import Launcher

log = logging.getLogger(__name__)

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
# Records of many jobs read in one round trip (a Lua script: one HGET per key).
_READ_RECORDS = (
    "local out = {} for i, k in ipairs(KEYS) do "
    "out[i] = redis.call('HGET', k, 'data') or '' end return out"
)
# The `data` field of every entry of a stream (Dapr's Redis pub/sub stores the CloudEvent there).
_READ_STREAM = (
    "local out = {} for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do "
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


def records(launcher: Launcher, ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """The stored record of each job (None: no record), read from Redis."""
    found: dict[str, dict[str, Any] | None] = {}
    for start in range(0, len(ids), _BATCH):
        batch = ids[start : start + _BATCH]
        keys = [f"statestore||job:{i}" for i in batch]
        out = launcher.redis_raw("EVAL", _READ_RECORDS, str(len(keys)), *keys)
        lines = out.split("\n")[: len(batch)]
        for job_id, line in zip(batch, lines, strict=True):
            found[job_id] = json.loads(line) if line.strip() else None
    return found


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


def stream_data(launcher: Launcher, stream: str) -> list[dict[str, Any]]:
    """The payload of every message still in `stream` (the CloudEvent's `data`)."""
    out = launcher.redis_raw("EVAL", _READ_STREAM, "1", stream)
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


def terminal_events(launcher: Launcher) -> dict[str, set[tuple[int, str]]]:
    """Per job, the distinct (seq, status) of every terminal event it published."""
    seen: dict[str, set[tuple[int, str]]] = {}
    for event in stream_data(launcher, "job-events"):
        if event.get("status") in TERMINAL:
            seen.setdefault(event["job_id"], set()).add((int(event["seq"]), event["status"]))
    return seen


def events_after_terminal(launcher: Launcher) -> dict[str, list[tuple[int, str]]]:
    """Per job, any event whose seq is above the seq of its first terminal event: a job that
    left a terminal status (which must never happen)."""
    first_terminal: dict[str, int] = {}
    events = stream_data(launcher, "job-events")
    for event in events:
        if event.get("status") in TERMINAL:
            job, seq = event["job_id"], int(event["seq"])
            first_terminal[job] = min(seq, first_terminal.get(job, seq))
    later: dict[str, list[tuple[int, str]]] = {}
    for event in events:
        job, seq = event.get("job_id"), int(event.get("seq", 0))
        if job in first_terminal and seq > first_terminal[job]:
            later.setdefault(job, []).append((seq, event["status"]))
    return later


def message_job_ids(launcher: Launcher, stream: str = "jobs") -> list[str]:
    """The job id every message on `stream` names (a JobMessage's `job_id`, or the `id` of a
    record published whole, as a transactional outbox does by default)."""
    ids = []
    for data in stream_data(launcher, stream):
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
