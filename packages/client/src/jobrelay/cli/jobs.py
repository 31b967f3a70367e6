"""`jobrelay submit|status|cancel|watch`: one job at a time."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from jobrelay.cli import render
from jobrelay.cli.common import (
    JsonFlag,
    client_of,
    console,
    fail,
    final_exit,
    one_job,
    show,
)
from jobrelay.client import Client, Delta, JobrelayError, StreamUnavailable, Submission, Upload
from jobrelay.contract import JobView, Priority, WebhookSpec


def key_values(pairs: list[str], what: str) -> dict[str, str]:
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
    priority: Annotated[
        Priority, typer.Option(help="Its lane: high before normal before low.")
    ] = Priority.NORMAL,
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
        metadata=key_values(metadata or [], "--metadata"),
        deadline_seconds=deadline,
        webhook=WebhookSpec(url=webhook) if webhook else None,
        idempotency_key=idempotency_key,
        priority=priority,
    )
    with client_of(ctx) as client:
        try:
            job = client.submit(submission)
            if wait and not job.status.terminal:
                job = _follow(client, job, timeout, as_json)
        except JobrelayError as exc:
            raise fail(exc, as_json) from exc
    show(job, as_json)
    final_exit(job)


def _follow(client: Client, job: JobView, timeout: float | None, quiet: bool) -> JobView:
    """The final job, with a spinner showing each status as the event stream reports it."""
    with console.status(_spinner_text(job), spinner="dots") as spinner:
        if quiet:
            spinner.stop()
        try:
            for state in client.stream(job.id, timeout=timeout):
                if isinstance(state, JobView):
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


def status(ctx: typer.Context, job_id: str, as_json: JsonFlag = False) -> None:
    """Show a job as it is now."""
    final_exit(one_job(ctx, as_json, lambda client: client.get(job_id)))


def cancel(ctx: typer.Context, job_id: str, as_json: JsonFlag = False) -> None:
    """Cancel a queued or running job."""
    one_job(ctx, as_json, lambda client: client.cancel(job_id))


def watch(
    ctx: typer.Context,
    job_id: str,
    timeout: Annotated[float | None, typer.Option(help="Give up after (s).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print each status change of a job as it happens (and a chat or summarize job's text
    as the model writes it), then its result."""
    job: JobView | None = None
    with client_of(ctx) as client:
        try:
            for event in client.stream(job_id, timeout=timeout):
                if isinstance(event, Delta):
                    text = json.dumps({"delta": event.text, "id": event.id}) if as_json else None
                    typer.echo(text or event.text, nl=as_json)
                    continue
                job = event
                if as_json:
                    typer.echo(job.model_dump_json())
                elif not job.status.terminal:
                    console.print(render.status_text(job.status), f"(attempt {job.attempts})")
            if job is None or not job.status.terminal:
                job = client.wait(job_id, timeout=timeout, check=False)
        except JobrelayError as exc:
            raise fail(exc, as_json) from exc
    if not as_json:
        console.print(render.job(job))
    final_exit(job)
