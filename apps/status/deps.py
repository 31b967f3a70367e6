"""Status's typed dependencies: what its routes get, built once per app by its lifespan."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request

from apps.status.settings import StatusSettings
from apps.status.signing import SigningSecrets
from apps.status.webhooks import WebhookSender
from jobrelay.hub import EventHub
from jobrelay.service import ServiceApp, app_of


class StatusApp(ServiceApp):
    """The status app, with what its lifespan built."""

    settings: StatusSettings
    hub: EventHub
    http: httpx.AsyncClient
    signing_secrets: SigningSecrets
    webhook_sender: WebhookSender


async def get_settings(request: Request) -> StatusSettings:
    return app_of(request, StatusApp).settings


async def get_hub(request: Request) -> EventHub:
    return app_of(request, StatusApp).hub


async def get_signing_secrets(request: Request) -> SigningSecrets:
    return app_of(request, StatusApp).signing_secrets


SettingsDep = Annotated[StatusSettings, Depends(get_settings)]
HubDep = Annotated[EventHub, Depends(get_hub)]
SigningSecretsDep = Annotated[SigningSecrets, Depends(get_signing_secrets)]
