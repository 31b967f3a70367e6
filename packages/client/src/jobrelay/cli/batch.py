"""`jobrelay batch`: a JSONL file of jobs in, one JSONL line per job out, resumable.

Each input line is a submit body (`{"task", "input", "params", ...}`, docs/api.md),
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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jobrelay.cli.common import EXIT_RETRY, JsonFlag, client_of, console, errors
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


def run_batch(
    ctx: typer.Context,
    input_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL, one job per line.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Succeeded jobs, JSONL.")],
    errors_file: Annotated[
        Path | None,
        typer.Option("--errors", "-e", help="Failed lines, JSONL (default: OUTPUT.errors.jsonl)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Jobs in flight.")] = 8,
    as_json: JsonFlag = False,
) -> None:
    """Run every line of a JSONL file as a job; rerun the same command to resume."""
    errors_path = errors_file or output.with_suffix(".errors.jsonl")
    lines = read_lines(input_file)
    done = done_lines(output, errors_path)
    todo = list(pending(lines, done))
    counts: Counter[str] = Counter(resumed=len(lines) - len(todo))
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        output.open("a", encoding="utf-8") as out,
        errors_path.open("a", encoding="utf-8") as err,
        Progress(*columns, console=errors, disable=as_json) as progress,
        client_of(ctx) as client,
    ):
        bar = progress.add_task(input_file.name, total=len(lines), completed=counts["resumed"])
        for line in (line for line in todo if line.submission is None):
            write_record(err, record_of(line, None))
            counts["failed"] += 1
            progress.advance(bar)
        valid = [line for line in todo if line.submission is not None]
        submissions = (line.submission for line in valid if line.submission is not None)
        for outcome in client.map(submissions, concurrency=concurrency):
            if outcome.error is not None and is_transient(outcome.error):
                counts["retry"] += 1
                continue
            record = record_of(valid[outcome.index], outcome)
            write_record(out if record["error"] is None else err, record)
            counts["failed" if record["error"] else "succeeded"] += 1
            progress.advance(bar)
    _batch_summary(counts, len(lines), output, errors_path, as_json)


def _batch_summary(
    counts: Counter[str], total: int, output: Path, errors_path: Path, as_json: bool
) -> None:
    summary = {
        "lines": total,
        "already_done": counts["resumed"],
        "succeeded": counts["succeeded"],
        "failed": counts["failed"],
        "to_retry": counts["retry"],
        "output": str(output),
        "errors": str(errors_path),
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        console.print(
            f"{total} lines: {counts['succeeded']} succeeded and {counts['failed']} failed now, "
            f"{counts['resumed']} done before; results in {output}, errors in {errors_path}"
        )
        if counts["retry"]:
            console.print(f"[yellow]{counts['retry']} lines hit a transient error: rerun[/]")
    if counts["retry"]:
        raise typer.Exit(EXIT_RETRY)
