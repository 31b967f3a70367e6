"""`jobrelay admin`: the credentials an operator makes for a tenant.

Each prints JSON: what to hand the tenant, and the entry to merge into the secret the servers
read (API_KEYS, WEBHOOK_SECRETS; docs/security.md). Nothing is sent anywhere.
"""

import json
from typing import Annotated

import typer

from jobrelay.contract.credentials import hash_key, new_key, new_webhook_secret

app = typer.Typer(help="Make API keys and webhook signing secrets for tenants.")
Tenant = Annotated[str, typer.Option(help="The tenant the credential is for.")]


@app.command("new-key")
def new_api_key(tenant: Tenant) -> None:
    """An API key for the client, and its line for the secret API_KEYS (only the hash)."""
    key = new_key()
    typer.echo(json.dumps({"api_key": key, "secret_entry": {hash_key(key): tenant}}, indent=2))


@app.command("new-webhook-secret")
def new_signing_secret(tenant: Tenant) -> None:
    """The tenant's webhook signing secret, and its line for the secret WEBHOOK_SECRETS."""
    secret = new_webhook_secret()
    made = {"webhook_secret": secret, "secret_entry": {tenant: secret}}
    typer.echo(json.dumps(made, indent=2))
