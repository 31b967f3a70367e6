"""What a route needs from the running app: its settings and its loaded models."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from apps.model.chat import SmolLM2
from apps.model.embedders import Embedder
from apps.model.settings import ModelSettings


async def get_model_settings(request: Request) -> ModelSettings:
    settings: ModelSettings = request.app.state.settings
    return settings


async def get_embedders(request: Request) -> dict[str, Embedder]:
    embedders: dict[str, Embedder] = request.app.state.embedders
    return embedders


async def get_chat(request: Request) -> SmolLM2 | None:
    chat: SmolLM2 | None = request.app.state.chat
    return chat


SettingsDep = Annotated[ModelSettings, Depends(get_model_settings)]
EmbeddersDep = Annotated[dict[str, Embedder], Depends(get_embedders)]
ChatDep = Annotated[SmolLM2 | None, Depends(get_chat)]
