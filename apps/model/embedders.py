"""The embedding models this server can serve, behind one interface, chosen by settings."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from apps.model.settings import EmbedderName, ModelSettings

log = logging.getLogger(__name__)

# What the text is for. Asymmetric models (e5) embed a search query and the passages it should
# find differently; symmetric ones (MiniLM) ignore this.
InputType = Literal["query", "passage"]


@dataclass(frozen=True, slots=True)
class Embeddings:
    vectors: npt.NDArray[np.float32]  # (n, dimensions), L2-normalised
    token_counts: list[int]


class Embedder(Protocol):
    model_id: str
    dimensions: int

    def embed(self, texts: list[str], input_type: InputType) -> Embeddings: ...


def load_embedders(settings: ModelSettings) -> dict[str, Embedder]:
    """Every embedder the settings name, keyed by the model id it is served under; with both
    MiniLM and e5 loaded, also the two as one (apps/model/ensemble.py)."""
    loaded: dict[str, Embedder] = {}
    for name in settings.embedders:
        started = time.monotonic()
        embedder = _load(name, settings.threads)
        loaded[embedder.model_id] = embedder
        log.info("loaded embedder %s in %.2f s", name, time.monotonic() - started)
    minilm, e5 = loaded.get("all-MiniLM-L6-v2"), loaded.get("multilingual-e5-small")
    if minilm is not None and e5 is not None:
        from apps.model.ensemble import MiniLME5

        both = MiniLME5(minilm, e5)
        loaded[both.model_id] = both
    return loaded


def _load(name: EmbedderName, threads: int) -> Embedder:
    # Imported here so a server that serves one model never loads the other's native library.
    if name == "all-MiniLM-L6-v2":
        from apps.model.minilm import MiniLM

        return MiniLM(threads)
    from apps.model.e5 import MultilingualE5

    return MultilingualE5(threads)
