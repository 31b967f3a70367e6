"""The embedding models this server can serve, behind one interface, chosen by settings."""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path
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


def package_dir(package: str, ships: str) -> Path:
    """Where an installed package's files are, found without running its __init__: the
    packages that ship our weights import much more (a database, a framework) than a file."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {package} package (which ships {ships}) is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def load_embedders(settings: ModelSettings) -> dict[str, Embedder]:
    """Every embedder the settings name, keyed by the model id it is served under; with both
    e5 and bge loaded, also the two as one (apps/model/ensemble.py)."""
    loaded: dict[str, Embedder] = {}
    for name in settings.embedders:
        started = time.monotonic()
        embedder = _load(name, settings.threads)
        loaded[embedder.model_id] = embedder
        log.info("loaded embedder %s in %.2f s", name, time.monotonic() - started)
    e5, bge = loaded.get("multilingual-e5-small"), loaded.get("bge-small-en-v1.5")
    if e5 is not None and bge is not None:
        from apps.model.ensemble import e5_bge

        both = e5_bge(e5, bge)
        loaded[both.model_id] = both
    return loaded


def _load(name: EmbedderName, threads: int) -> Embedder:
    # Imported here so a server that serves one model never loads the other's native library.
    if name == "all-MiniLM-L6-v2":
        from apps.model.minilm import MiniLM

        return MiniLM(threads)
    if name == "bge-small-en-v1.5":
        from apps.model.bge import BgeSmall

        return BgeSmall(threads)
    from apps.model.e5 import MultilingualE5

    return MultilingualE5(threads)
