"""The model app, typed, and what a route needs from it: its settings and its loaded models."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI

from apps.model.chat import SmolLM2
from apps.model.embedders import Embedder
from apps.model.settings import ModelSettings
from jobrelay.dependencies import from_app


class ModelApp(FastAPI):
    """The model server, with what its lifespan loaded."""

    settings: ModelSettings
    embedders: dict[str, Embedder]
    chat: SmolLM2 | None


SettingsDep = Annotated[ModelSettings, Depends(from_app(ModelApp, lambda app: app.settings))]
EmbeddersDep = Annotated[
    dict[str, Embedder], Depends(from_app(ModelApp, lambda app: app.embedders))
]
ChatDep = Annotated[SmolLM2 | None, Depends(from_app(ModelApp, lambda app: app.chat))]
