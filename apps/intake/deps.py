"""Intake's typed dependencies: what its routes get, built once per app by its lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from apps.intake.batches.engine import Batches
from apps.intake.settings import IntakeSettings
from apps.intake.submission import Intake
from jobrelay.dependencies import from_app
from jobrelay.service import ServiceApp


class IntakeApp(ServiceApp):
    """The intake app, with what its lifespan built."""

    settings: IntakeSettings
    intake: Intake
    batches: Batches


IntakeDep = Annotated[Intake, Depends(from_app(IntakeApp, lambda app: app.intake))]
SettingsDep = Annotated[IntakeSettings, Depends(from_app(IntakeApp, lambda app: app.settings))]
BatchesDep = Annotated[Batches, Depends(from_app(IntakeApp, lambda app: app.batches))]
