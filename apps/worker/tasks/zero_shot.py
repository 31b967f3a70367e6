"""Zero-shot (and few-shot) classification by embeddings: the maths, apart from any model call.

Each label becomes one prototype vector: the mean of the embeddings of the label written into a
template ("This text is about {label}."), its description if given, and its examples if given.
A text's similarity to each prototype ranks the labels. Kept free of I/O so the worker task
and the evaluation (bench/classify_eval.py) run exactly the same recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

# Chosen on the dev split of bench/data/labelled (bench/labelled_eval.py; its test split is
# never used to choose): with the local MiniLM+e5 embedder, the bare label averaged with
# "Overall, {label}." was right most often across sentiment, topics, intents and other
# languages (docs/local-model.md).
DEFAULT_TEMPLATES = ("{label}", "Overall, {label}.")

# Cosine similarities of sentence embeddings sit in a narrow band (0.0 to 0.6 for MiniLM,
# 0.7 to 0.9 for e5), so a softmax over them needs a low temperature to say which label wins
# with any conviction. The scores rank labels; they are not calibrated probabilities.
SOFTMAX_TEMPERATURE = 0.05

# Multi-label: a label is chosen when its similarity is at least this many standard deviations
# (taken over the text's similarities to all labels) above their mean. Standardising makes
# one threshold fit embedders whose similarity bands differ; the value was calibrated on
# bench/data/classify/tags.json (docs/local-model.md). The best label is always chosen.
MULTI_LABEL_THRESHOLD = 0.75


@dataclass(frozen=True, slots=True)
class LabelSpec:
    name: str
    description: str | None = None
    examples: tuple[str, ...] = field(default_factory=tuple)


def prototype_texts(label: LabelSpec, templates: Sequence[str]) -> list[str]:
    """The texts whose embeddings, averaged, stand for `label`."""
    # str.replace, not str.format: a template may come from the job, and format() would let
    # "{label.__class__}" reach into Python objects.
    texts = [template.replace("{label}", label.name) for template in templates]
    if label.description:
        texts.append(label.description)
    texts.extend(label.examples)
    return texts


def prototypes(vectors: Vectors, counts: list[int]) -> Vectors:
    """One unit vector per label from the prototype vectors, `counts[i]` of them for label i."""
    out = np.empty((len(counts), vectors.shape[1]), dtype=np.float32)
    start = 0
    for i, count in enumerate(counts):
        centroid = vectors[start : start + count].mean(axis=0)
        out[i] = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
        start += count
    return out


def softmax_scores(similarity: Vectors) -> Vectors:
    weights = np.exp((similarity - similarity.max()) / SOFTMAX_TEMPERATURE)
    scores: Vectors = (weights / weights.sum()).astype(np.float32)
    return scores


def standardised(similarity: Vectors) -> Vectors:
    """How far each label's similarity stands above the others', in standard deviations."""
    spread = max(float(similarity.std()), 1e-6)
    z: Vectors = ((similarity - similarity.mean()) / spread).astype(np.float32)
    return z


def chosen(similarity: Vectors, threshold: float) -> list[int]:
    """Indices of the labels a multi-label answer holds, best first; never empty."""
    z = standardised(similarity)
    order = [int(i) for i in np.argsort(-similarity)]
    return [i for i in order if i == order[0] or z[i] >= threshold]
