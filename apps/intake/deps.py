"""Intake's typed dependencies: what its routes get, built once per app by its lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from apps.intake.settings import IntakeSettings
from apps.intake.submission import Intake
from jobrelay.service import ServiceApp


class IntakeApp(ServiceApp):
    """The intake app, with what its lifespan built."""

    settings: IntakeSettings
    intake: Intake


def _app(request: Request) -> IntakeApp:
    app = request.app
    assert isinstance(app, IntakeApp), "intake's routes are served by an IntakeApp"
    return app


async def get_intake(request: Request) -> Intake:
    return _app(request).intake


async def get_settings(request: Request) -> IntakeSettings:
    return _app(request).settings


IntakeDep = Annotated[Intake, Depends(get_intake)]
SettingsDep = Annotated[IntakeSettings, Depends(get_settings)]
