"""Intake's typed dependencies: what its routes get, built once per app by its lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from apps.intake.settings import IntakeSettings
from apps.intake.submission import Intake
from jobrelay.service import ServiceApp, app_of


class IntakeApp(ServiceApp):
    """The intake app, with what its lifespan built."""

    settings: IntakeSettings
    intake: Intake


async def get_intake(request: Request) -> Intake:
    return app_of(request, IntakeApp).intake


async def get_settings(request: Request) -> IntakeSettings:
    return app_of(request, IntakeApp).settings


IntakeDep = Annotated[Intake, Depends(get_intake)]
SettingsDep = Annotated[IntakeSettings, Depends(get_settings)]
