"""`jobrelay batch`: a JSONL file of jobs in, one JSONL line per job out, resumable.

Each input line is a submit body (`{"task", "input", "params", ...}`, README "The API"),
optionally with a `custom_id` of the caller's own, as in the OpenAI Batch API. Succeeded jobs
go to the output file, everything else to the errors file, one line each:

    {"id": job id or null, "custom_id": ..., "line": 1-based number,
     "response": {"status_code": 200, "body": the job} or null,
     "error": null or {"code", "message"}}

Resuming is what makes a large batch safe to interrupt. The two files are the ledger: a line
already in either is done and never sent again. A line that was sent but not recorded (the
CLI was killed while it ran) is sent again with the same Idempotency-Key, derived from the
file and the line, so the server answers with the job it already has instead of a new one.
Transient failures (server unreachable, 5xx, a timeout) are not recorded: a rerun retries them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from jobrelay.client import ApiError, JobrelayError, Outcome, Submission
from jobrelay.contract import JobStatus, SubmitRequest


@dataclass(frozen=True)
class Line:
    """One input line, parsed; `problem` says why it cannot be submitted at all."""

    number: int
    custom_id: str
    submission: Submission | None
    problem: str | None = None


def idempotency_key(path: Path, number: int, text: str) -> str:
    """The same file, line number and line give the same key on every run (and machine
    path aside, nothing else): the key under which the server remembers this line's job."""
    digest = hashlib.sha256(f"{path.resolve()}\n{number}\n{text}".encode()).hexdigest()
    return f"jobrelay-batch-{digest[:48]}"


def parse_line(path: Path, number: int, text: str) -> Line:
    try:
        raw: Any = json.loads(text)
        if not isinstance(raw, dict):
            raise TypeError("a line must be a JSON object")
        custom_id = str(raw.pop("custom_id", f"line-{number}"))
        request = SubmitRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "line"
        return Line(number, f"line-{number}", None, f"{where}: {first['msg']}")
    except ValueError as exc:
        return Line(number, f"line-{number}", None, f"not valid JSON: {exc}")
    except TypeError as exc:
        return Line(number, f"line-{number}", None, str(exc))
    key = idempotency_key(path, number, text)
    return Line(number, custom_id, Submission.of(request, idempotency_key=key))


def read_lines(path: Path) -> list[Line]:
    """Every non-blank line of the input; blank lines keep their numbers but are skipped."""
    with path.open(encoding="utf-8") as lines:
        return [
            parse_line(path, number, text.rstrip("\n"))
            for number, text in enumerate(lines, start=1)
            if text.strip()
        ]


def done_lines(*ledgers: Path) -> set[int]:
    """Line numbers already recorded in the output or errors file."""
    done: set[int] = set()
    for ledger in ledgers:
        if not ledger.exists():
            continue
        _drop_torn_tail(ledger)
        with ledger.open(encoding="utf-8") as records:
            done.update(json.loads(record)["line"] for record in records if record.strip())
    return done


def _drop_torn_tail(ledger: Path) -> None:
    # A kill in the middle of a write leaves half a line; appending after it would glue the
    # next record to it. Cut back to the last complete line.
    data = ledger.read_bytes()
    if data and not data.endswith(b"\n"):
        ledger.write_bytes(data[: data.rfind(b"\n") + 1])


def is_transient(error: JobrelayError) -> bool:
    """Worth a rerun rather than a line in the errors file."""
    if isinstance(error, ApiError):
        return error.status >= 500 or error.status == 429
    return error.code in ("connection_error", "stream_unavailable", "wait_timeout")


def record_of(line: Line, outcome: Outcome | None) -> dict[str, Any]:
    """The output or errors line for an input line (outcome None: the line did not parse)."""
    record: dict[str, Any] = {
        "id": None,
        "custom_id": line.custom_id,
        "line": line.number,
        "response": None,
        "error": None,
    }
    if outcome is None:
        record["error"] = {"code": "invalid_line", "message": line.problem}
    elif outcome.job is not None:
        job = outcome.job
        record["id"] = job.id
        record["response"] = {"status_code": 200, "body": job.model_dump(mode="json")}
        if job.status is not JobStatus.SUCCEEDED:
            code = job.error.code if job.error else job.status.value
            message = job.error.message if job.error else f"the job was {job.status.value}"
            record["error"] = {"code": code, "message": message}
    elif outcome.error is not None:
        status = outcome.error.status if isinstance(outcome.error, ApiError) else None
        body = {"error": {"code": outcome.error.code, "message": outcome.error.message}}
        record["response"] = {"status_code": status, "body": body} if status else None
        record["error"] = {"code": outcome.error.code, "message": outcome.error.message}
    return record


def write_record(out: IO[str], record: dict[str, Any]) -> None:
    # One write and a flush per record: a kill loses at most the line being written, which
    # done_lines() then cuts off, and the job stays findable by its Idempotency-Key.
    out.write(json.dumps(record, separators=(",", ":")) + "\n")
    out.flush()


def pending(lines: list[Line], done: set[int]) -> Iterator[Line]:
    return (line for line in lines if line.number not in done)
