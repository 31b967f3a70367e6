"""`jobrelay`: the command line on top of jobrelay.client.

Human-readable output through rich by default; `--json` prints one JSON document (or one per
line for `watch`) on stdout for scripts. Exit codes: 0 done, 1 the job failed (or was
cancelled or expired), 3 the API refused or could not be reached, 4 a batch has lines to retry.
"""

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jobrelay.cli import batch, render
from jobrelay.client import (
    Client,
    ClientSettings,
    JobrelayError,
    StreamUnavailable,
    Submission,
    Upload,
)
from jobrelay.contract import JobStatus, JobView, WebhookSpec

app = typer.Typer(
    help="Submit AI jobs to jobrelay, follow them, and run batch files.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# `jobrelay dlq list|replay` joins here as a sub-app (typer.Typer, app.add_typer(dlq, name=
# "dlq")) once the reliability work gives dead-lettered jobs an API to list and replay them.

console = Console()
errors = Console(stderr=True)

EXIT_JOB_FAILED = 1
EXIT_API_ERROR = 3
EXIT_RETRY = 4

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.callback()
def configure(
    ctx: typer.Context,
    intake_url: Annotated[
        str | None, typer.Option(help="Intake base URL (env JOBRELAY_INTAKE_URL).")
    ] = None,
    status_url: Annotated[
        str | None, typer.Option(help="Status base URL (env JOBRELAY_STATUS_URL).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key, sent as a bearer token (env JOBRELAY_API_KEY).")
    ] = None,
) -> None:
    given: dict[str, Any] = {"intake_url": intake_url, "status_url": status_url, "api_key": api_key}
    # Options given on the command line win; the rest come from the environment.
    ctx.obj = ClientSettings(**{k: v for k, v in given.items() if v is not None})


def _client(ctx: typer.Context) -> Client:
    settings: ClientSettings = ctx.obj
    return Client(settings)


def _fail(error: JobrelayError, as_json: bool) -> typer.Exit:
    if as_json:
        typer.echo(json.dumps({"error": {"code": error.code, "message": error.message}}))
    else:
        errors.print(f"[red]error[/red] [bold]{error.code}[/bold]: {error.message}")
    return typer.Exit(EXIT_API_ERROR)


def _show(job: JobView, as_json: bool) -> None:
    if as_json:
        typer.echo(job.model_dump_json())
    else:
        console.print(render.job(job))


def _final_exit(job: JobView) -> None:
    if job.status.terminal and job.status is not JobStatus.SUCCEEDED:
        raise typer.Exit(EXIT_JOB_FAILED)


def _key_values(pairs: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{what} must be KEY=VALUE, not {pair!r}")
        out[key] = value
    return out


def _params(params_json: str | None, labels: list[str]) -> dict[str, Any]:
    try:
        params = json.loads(params_json) if params_json else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--params is not JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise typer.BadParameter("--params must be a JSON object")
    if labels:
        params["labels"] = [*params.get("labels", []), *labels]
    return params


@app.command()
def submit(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="classify, embed, describe_image, ...")],
    text: Annotated[
        str | None, typer.Argument(help="The input text; `-` reads stdin. Or use --file.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", exists=True, dir_okay=False, help="Upload.")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="A classify label (repeat).")
    ] = None,
    params: Annotated[str | None, typer.Option("--params", "-p", help="Params, JSON.")] = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", "-m", help="KEY=VALUE (repeat).")
    ] = None,
    deadline: Annotated[float | None, typer.Option(help="Expire if not started (s).")] = None,
    webhook: Annotated[str | None, typer.Option(help="POST the job here when done.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key, same job.")] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait for the result.")] = False,
    timeout: Annotated[float | None, typer.Option(help="With --wait: give up after (s).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Submit a job; with --wait, follow it live to its result."""
    if (text is None) == (file is None):
        raise typer.BadParameter("give the input text or --file, not both or neither")
    submission = Submission(
        task=task,
        text=typer.get_text_stream("stdin").read() if text == "-" else text,
        file=Upload.from_path(file) if file else None,
        params=_params(params, label or []),
        metadata=_key_values(metadata or [], "--metadata"),
        deadline_seconds=deadline,
        webhook=WebhookSpec(url=webhook) if webhook else None,
        idempotency_key=idempotency_key,
    )
    with _client(ctx) as client:
        try:
            job = client.submit(submission)
            if wait and not job.status.terminal:
                job = _follow(client, job, timeout, as_json)
        except JobrelayError as exc:
            raise _fail(exc, as_json) from exc
    _show(job, as_json)
    _final_exit(job)


def _follow(client: Client, job: JobView, timeout: float | None, quiet: bool) -> JobView:
    """The final job, with a spinner showing each status as the event stream reports it."""
    with console.status(_spinner_text(job), spinner="dots") as spinner:
        if quiet:
            spinner.stop()
        try:
            for state in client.stream(job.id, timeout=timeout):
                job = state
                spinner.update(_spinner_text(job))
        except StreamUnavailable:
            spinner.update(f"job {job.id}: {job.status.value} (polling)")
        if not job.status.terminal:
            job = client.wait(job.id, timeout=timeout, check=False)
    return job


def _spinner_text(job: JobView) -> str:
    style = render.STATUS_STYLE[job.status]
    return f"job {job.id}: [{style}]{job.status.value}[/{style}] (attempt {job.attempts})"


@app.command()
def status(ctx: typer.Context, job_id: str, as_json: JsonFlag = False) -> None:
    """Show a job as it is now."""
    with _client(ctx) as client:
        try:
            job = client.get(job_id)
        except JobrelayError as exc:
            raise _fail(exc, as_json) from exc
    _show(job, as_json)
    _final_exit(job)


@app.command()
def cancel(ctx: typer.Context, job_id: str, as_json: JsonFlag = False) -> None:
    """Cancel a queued or running job."""
    with _client(ctx) as client:
        try:
            job = client.cancel(job_id)
        except JobrelayError as exc:
            raise _fail(exc, as_json) from exc
    _show(job, as_json)


@app.command()
def watch(
    ctx: typer.Context,
    job_id: str,
    timeout: Annotated[float | None, typer.Option(help="Give up after (s).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print each status change of a job as it happens, then its result."""
    job: JobView | None = None
    with _client(ctx) as client:
        try:
            for job in client.stream(job_id, timeout=timeout):
                if as_json:
                    typer.echo(job.model_dump_json())
                elif not job.status.terminal:
                    console.print(render.status_text(job.status), f"(attempt {job.attempts})")
            if job is None or not job.status.terminal:
                job = client.wait(job_id, timeout=timeout, check=False)
        except JobrelayError as exc:
            raise _fail(exc, as_json) from exc
    if not as_json:
        console.print(render.job(job))
    _final_exit(job)


@app.command("batch")
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
    lines = batch.read_lines(input_file)
    done = batch.done_lines(output, errors_path)
    todo = list(batch.pending(lines, done))
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
        _client(ctx) as client,
    ):
        bar = progress.add_task(input_file.name, total=len(lines), completed=counts["resumed"])
        for line in (line for line in todo if line.submission is None):
            batch.write_record(err, batch.record_of(line, None))
            counts["failed"] += 1
            progress.advance(bar)
        valid = [line for line in todo if line.submission is not None]
        submissions = (line.submission for line in valid if line.submission is not None)
        for outcome in client.map(submissions, concurrency=concurrency):
            if outcome.error is not None and batch.is_transient(outcome.error):
                counts["retry"] += 1
                continue
            record = batch.record_of(valid[outcome.index], outcome)
            batch.write_record(out if record["error"] is None else err, record)
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


def main() -> None:
    app()
