"""The model app, typed, and what a route needs from it: its settings and its loaded models."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request

from apps.model.chat import SmolLM2
from apps.model.embedders import Embedder
from apps.model.settings import ModelSettings


class ModelApp(FastAPI):
    """The model server, with what its lifespan loaded."""

    settings: ModelSettings
    embedders: dict[str, Embedder]
    chat: SmolLM2 | None


def model_app(request: Request) -> ModelApp:
    app = request.app
    assert isinstance(app, ModelApp), "the model's routes are served by a ModelApp"
    return app


async def get_model_settings(request: Request) -> ModelSettings:
    return model_app(request).settings


async def get_embedders(request: Request) -> dict[str, Embedder]:
    return model_app(request).embedders


async def get_chat(request: Request) -> SmolLM2 | None:
    return model_app(request).chat


SettingsDep = Annotated[ModelSettings, Depends(get_model_settings)]
EmbeddersDep = Annotated[dict[str, Embedder], Depends(get_embedders)]
ChatDep = Annotated[SmolLM2 | None, Depends(get_chat)]
