"""`jobrelay`: the command line on top of jobrelay.client.

Human-readable output through rich by default; `--json` prints one JSON document (or one per
line for `watch`) on stdout for scripts. Exit codes: 0 done, 1 the job failed (or was
cancelled or expired), 3 the API refused or could not be reached, 4 a batch was left
running on the server (rerun the same command to follow it).
"""

from typing import Annotated, Any

import typer

from jobrelay.cli import admin, batch, jobs, listing, receiver
from jobrelay.client import ClientSettings

app = typer.Typer(
    help="Submit AI jobs to jobrelay, follow them, and run batch files.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(jobs.submit)
app.command()(jobs.status)
app.command()(jobs.cancel)
app.command()(jobs.watch)
app.command("list")(listing.list_jobs)
app.command("batch")(batch.run_batch)
app.add_typer(admin.app, name="admin")
app.add_typer(receiver.app, name="webhooks")


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


def main() -> None:
    app()
