"""`jobrelay batch`: a JSONL file of jobs in, one JSONL line per job out, run by the server's
batch engine (the OpenAI-compatible `/v1/files` and `/v1/batches`, docs/openai-batch.md).

Each input line is a submit body (`{"task", "input", "params", ...}`, docs/api.md),
optionally with a `custom_id` of the caller's own. The CLI turns each into an OpenAI batch
line for the `/v1/jobs` endpoint, uploads the file, creates one batch, shows its progress,
and when it ends writes succeeded jobs to the output file and everything else to the errors
file, one line each:

    {"id": job id or null, "custom_id": ..., "line": 1-based number,
     "response": {"status_code": 200, "body": the job} or null,
     "error": null or {"code", "message"}}

Resuming: the batch lives on the server. Its id is kept beside the output
(`OUTPUT.batch.json`, with the input's SHA-256), so the same command run again after a kill
or a lost connection follows the same batch instead of creating another: no line runs twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jobrelay.cli.batch_api import ENDED, BatchApi
from jobrelay.cli.common import EXIT_RETRY, JsonFlag, console, errors, fail
from jobrelay.client import ClientSettings, JobrelayError


def request_line(number: int, text: str) -> tuple[str, str | None]:
    """The OpenAI batch line for an input line, and its custom_id (None: the server will
    refuse the line as it stands, and say why in the errors file)."""
    if not text.strip():
        return "", None  # kept, so the server's line numbers are the file's
    try:
        raw: Any = json.loads(text)
    except ValueError:
        return text, None
    if not isinstance(raw, dict):
        return text, None
    custom_id = str(raw.pop("custom_id", f"line-{number}"))
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/jobs", "body": raw}
    return json.dumps(line, separators=(",", ":")), custom_id


def write_requests(source: Path, out: IO[str]) -> dict[str, list[int]]:
    """Stream `source` into OpenAI batch lines; each custom_id's line numbers, in order."""
    numbers: defaultdict[str, list[int]] = defaultdict(list)
    with source.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            line, custom_id = request_line(number, text.rstrip("\n"))
            out.write(line + "\n")
            if custom_id is not None:
                numbers[custom_id].append(number)
    return dict(numbers)


def record_of(line: dict[str, Any], numbers: dict[str, list[int]]) -> dict[str, Any]:
    """The output or errors record for a line of the batch's output or error file."""
    error = line.get("error")
    response = line.get("response")
    number = error.get("line") if error else None
    custom_id = line.get("custom_id")
    if number is None and custom_id in numbers and numbers[custom_id]:
        number = numbers[custom_id].pop(0)
    elif number is not None and custom_id in numbers and number in numbers[custom_id]:
        numbers[custom_id].remove(number)
    return {
        "id": response.get("request_id") if response else None,
        "custom_id": custom_id if custom_id is not None else f"line-{number}",
        "line": number,
        "response": {"status_code": 200, "body": response["body"]} if response else None,
        "error": {"code": error["code"], "message": error["message"]} if error else None,
    }


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _start(api: BatchApi, source: Path, state: Path, digest: str) -> dict[str, Any]:
    """Upload and create the batch; its state, saved before anything else can fail."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as out:
        numbers = write_requests(source, out)
    try:
        file_id = api.upload(Path(out.name))
    finally:
        os.unlink(out.name)
    batch = api.create(file_id, {"source": source.name[:500]})
    saved = {"input_sha256": digest, "batch_id": batch["id"], "custom_ids": numbers}
    state.write_text(json.dumps(saved))
    return saved


def _follow(api: BatchApi, batch_id: str, label: str, as_json: bool) -> dict[str, Any]:
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=errors, disable=as_json) as progress:
        bar = progress.add_task(label, total=None)
        while True:
            batch = api.get(batch_id)
            counts = batch["request_counts"]
            done = counts["completed"] + counts["failed"]
            progress.update(bar, total=counts["total"], completed=done)
            if batch["status"] in ENDED:
                return batch
            time.sleep(0.5)


def _write(api: BatchApi, file_id: str | None, path: Path, numbers: dict[str, list[int]]) -> int:
    """Write a batch file's records to `path` (whole, then renamed into place)."""
    partial = path.with_name(path.name + ".partial")
    count = 0
    with partial.open("w", encoding="utf-8") as out:
        for line in api.lines(file_id):
            out.write(json.dumps(record_of(line, numbers), separators=(",", ":")) + "\n")
            count += 1
    partial.replace(path)
    return count


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
    as_json: JsonFlag = False,
) -> None:
    """Run every line of a JSONL file as a job, as one server-side batch; rerun the same
    command to follow it again after an interruption."""
    errors_path = errors_file or output.with_suffix(".errors.jsonl")
    state_path = output.with_suffix(".batch.json")
    digest = _digest(input_file)
    settings: ClientSettings = ctx.obj
    try:
        with BatchApi(settings) as api:
            state = json.loads(state_path.read_text()) if state_path.exists() else None
            resumed = state is not None and state.get("input_sha256") == digest
            if not resumed:
                state = _start(api, input_file, state_path, digest)
            assert state is not None
            batch = _follow(api, state["batch_id"], input_file.name, as_json)
            numbers = state["custom_ids"]
            succeeded = _write(api, batch["output_file_id"], output, numbers)
            failed = _write(api, batch["error_file_id"], errors_path, numbers)
    except JobrelayError as exc:
        if exc.code in ("connection_error",) or getattr(exc, "status", 0) >= 500:
            errors.print(f"[yellow]{exc.message}: rerun the same command to resume[/]")
            raise typer.Exit(EXIT_RETRY) from exc
        raise fail(exc, as_json) from exc
    summary = {
        "lines": batch["request_counts"]["total"],
        "succeeded": succeeded,
        "failed": failed,
        "batch": batch["id"],
        "status": batch["status"],
        "resumed": resumed,
        "output": str(output),
        "errors": str(errors_path),
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        again = " (followed again)" if resumed else ""
        console.print(
            f"{summary['lines']} lines: {succeeded} succeeded and {failed} failed, batch "
            f"{batch['id']} {batch['status']}{again}; results in {output}, errors in "
            f"{errors_path}"
        )
