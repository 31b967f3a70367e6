"""MiniLM and multilingual-e5 as one embedder: the two unit vectors, weighted and set side by
side, so that a dot product of two such vectors is the weighted mean of the two models'
cosine similarities. `classify` on the local model uses it by default: on jobrelay's
held-out labelled sets it was right more often with bare labels than either model alone
(docs/local-model.md), and a job still makes one embeddings call to one model id.
"""

from __future__ import annotations

import numpy as np

from apps.model.embedders import Embedder, Embeddings, InputType

MODEL_ID = "minilm-e5-small"

# e5's share of the similarity, chosen on the dev split of bench/data/labelled (never on its
# test split). e5's cosines sit in a band several times narrower than MiniLM's, so an even
# mix would let MiniLM decide nearly alone.
E5_WEIGHT = 0.9


class MiniLME5:
    """A symmetric embedder made of two loaded ones; it loads nothing itself."""

    model_id = MODEL_ID

    def __init__(self, minilm: Embedder, e5: Embedder, e5_weight: float = E5_WEIGHT) -> None:
        self._parts = ((minilm, np.sqrt(1 - e5_weight)), (e5, np.sqrt(e5_weight)))
        self.dimensions = minilm.dimensions + e5.dimensions

    def embed(self, texts: list[str], input_type: InputType = "query") -> Embeddings:
        results = [embedder.embed(texts, input_type) for embedder, _ in self._parts]
        # Each part is unit length and the squared weights sum to one: so is the whole.
        vectors = np.concatenate(
            [
                result.vectors * weight
                for result, (_, weight) in zip(results, self._parts, strict=True)
            ],
            axis=1,
        ).astype(np.float32)
        counts = [max(pair) for pair in zip(*(r.token_counts for r in results), strict=True)]
        return Embeddings(vectors, counts)
