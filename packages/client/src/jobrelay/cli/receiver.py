"""A webhook receiver for trying jobrelay locally: verifies each delivery's Standard Webhooks
signature and prints the job it carries.

    jobrelay webhooks listen --port 9000 [--secret whsec_...]

The default secret is the development one `make run` gives the status app (dapr.yaml), which
signs every webhook while authentication is off. With it on, each tenant's webhooks are
signed with the tenant's own secret: pass the one `GET /v1/webhooks/secret` on status answers
your credentials (`--secret "$(curl -s -H 'Authorization: Bearer ...' .../v1/webhooks/secret
| jq -r .key)"`).
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated

import typer
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

DEV_SECRET = "whsec_am9icmVsYXktbG9jYWwtZGV2ZWxvcG1lbnQtc2VjcmV0"  # noqa: S105 (public dev secret)

log = logging.getLogger("jobrelay.webhooks")


def handler_for(verifier: Webhook) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            try:
                job = verifier.verify(body, dict(self.headers))
            except WebhookVerificationError as exc:
                log.warning("REJECTED %s: %s", self.headers.get("webhook-id"), exc)
                self.send_response(400)
            else:
                log.info(
                    "verified webhook-id=%s status=%s\n%s",
                    self.headers["webhook-id"],
                    job["status"],
                    json.dumps(job, indent=2),
                )
                self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return  # one line per delivery above is enough

    return Receiver


app = typer.Typer(help="Receive jobrelay's webhooks locally.")


@app.command()
def listen(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 9000,
    secret: Annotated[
        str, typer.Option(help="Your tenant's secret (GET /v1/webhooks/secret).")
    ] = DEV_SECRET,
) -> None:
    """Verify each webhook delivered to http://127.0.0.1:PORT/ and print its job."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(Webhook(secret)))
    log.info("listening on http://127.0.0.1:%d/ (Ctrl-C to stop)", port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()
