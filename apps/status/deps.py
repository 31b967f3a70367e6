"""Status's typed dependencies: what its routes get, built once per app by its lifespan."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends

from apps.status.queue_position import QueuePositions
from apps.status.settings import StatusSettings
from apps.status.signing import SigningSecrets
from apps.status.webhooks import WebhookSender
from jobrelay.dependencies import from_app
from jobrelay.hub import EventHub
from jobrelay.job_index import JobIndex
from jobrelay.service import ServiceApp


class StatusApp(ServiceApp):
    """The status app, with what its lifespan built."""

    settings: StatusSettings
    hub: EventHub
    http: httpx.AsyncClient
    signing_secrets: SigningSecrets
    webhook_sender: WebhookSender
    index: JobIndex  # the tenants' job indexes, for GET /v1/jobs
    queue_positions: QueuePositions


SettingsDep = Annotated[StatusSettings, Depends(from_app(StatusApp, lambda app: app.settings))]
HubDep = Annotated[EventHub, Depends(from_app(StatusApp, lambda app: app.hub))]
SigningSecretsDep = Annotated[
    SigningSecrets, Depends(from_app(StatusApp, lambda app: app.signing_secrets))
]
IndexDep = Annotated[JobIndex, Depends(from_app(StatusApp, lambda app: app.index))]
QueueDep = Annotated[QueuePositions, Depends(from_app(StatusApp, lambda app: app.queue_positions))]
