"""What every `jobrelay` command shares: the consoles, the exit codes, the client it builds
from the global options, and how it shows a job or an error."""

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console

from jobrelay.cli import render
from jobrelay.client import Client, ClientSettings, JobrelayError
from jobrelay.contract import JobStatus, JobView

console = Console()
errors = Console(stderr=True)

EXIT_JOB_FAILED = 1
EXIT_API_ERROR = 3
EXIT_RETRY = 4

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def client_of(ctx: typer.Context) -> Client:
    settings: ClientSettings = ctx.obj
    return Client(settings)


def fail(error: JobrelayError, as_json: bool) -> typer.Exit:
    if as_json:
        typer.echo(json.dumps({"error": {"code": error.code, "message": error.message}}))
    else:
        errors.print(f"[red]error[/red] [bold]{error.code}[/bold]: {error.message}")
    return typer.Exit(EXIT_API_ERROR)


def show(job: JobView, as_json: bool) -> None:
    if as_json:
        typer.echo(job.model_dump_json())
    else:
        console.print(render.job(job))


def final_exit(job: JobView) -> None:
    if job.status.terminal and job.status is not JobStatus.SUCCEEDED:
        raise typer.Exit(EXIT_JOB_FAILED)


def one_job(ctx: typer.Context, as_json: bool, call: Callable[[Client], JobView]) -> JobView:
    """The job `call` answers with, shown; an API error ends the command."""
    with client_of(ctx) as client:
        try:
            job = call(client)
        except JobrelayError as exc:
            raise fail(exc, as_json) from exc
    show(job, as_json)
    return job
