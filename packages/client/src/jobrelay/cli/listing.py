"""`jobrelay list`: your jobs, newest first, as a table (or JSON), with the API's filters."""

import itertools
import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from jobrelay.cli import render
from jobrelay.cli.common import JsonFlag, client_of, console, fail
from jobrelay.cli.jobs import key_values
from jobrelay.client import JobFilter, JobrelayError
from jobrelay.contract import JobStatus, JobView

# The server's page size is at most 100: more results than that take several requests.
_MAX_PAGE = 100


def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        list[JobStatus] | None, typer.Option("--status", "-s", help="Keep this status (repeat).")
    ] = None,
    task: Annotated[str | None, typer.Option(help="Keep this task's jobs.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Created at or after (ISO 8601; UTC if no zone).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Created before (ISO 8601).")] = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", "-m", help="KEY=VALUE (repeat).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many jobs.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """List your jobs, newest first."""
    filters = JobFilter(
        status=status or (),
        task=task,
        created_after=since,
        created_before=until,
        metadata=key_values(metadata or [], "--metadata"),
        page_size=min(limit, _MAX_PAGE),
    )
    with client_of(ctx) as client:
        try:
            jobs = list(itertools.islice(client.list(filters), limit))
        except JobrelayError as exc:
            raise fail(exc, as_json) from exc
    if as_json:
        typer.echo(json.dumps([job.model_dump(mode="json") for job in jobs]))
        return
    console.print(_table(jobs))


def _table(jobs: list[JobView]) -> Table:
    table = Table(title=f"{len(jobs)} jobs, newest first", title_justify="left")
    for column in ("id", "status", "task", "created", "finished", "metadata"):
        table.add_column(column, no_wrap=column != "metadata")
    for job in jobs:
        table.add_row(
            job.id,
            render.status_text(job.status),
            job.task,
            _when(job.created_at),
            _when(job.finished_at),
            " ".join(f"{k}={v}" for k, v in job.metadata.items()),
        )
    return table


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""
