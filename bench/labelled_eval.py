"""Bare-label classification on the held-out sets of bench/data/labelled (issue 16).

Each set is split by label: the first of every three items of a label is `dev`, the other
two are `test`. Recipes (an embedder and the label templates) are ranked on dev alone; the
winner is the default (zero_shot.DEFAULT_TEMPLATES with the `local-classify` profile), and
its test accuracy is the figure docs/local-model.md reports. Nothing is tuned on test.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from openai import OpenAI
from openai.types.shared_params import ResponseFormatJSONSchema

from apps.worker.tasks import zero_shot
from apps.worker.tasks.zero_shot import LabelSpec, Vectors

DATA = Path(__file__).resolve().parent / "data" / "labelled"

# The wordings tried. Pairs of them are tried too; a pair's prototype is their mean.
TEMPLATES = (
    "{label}",
    "This text is about {label}.",
    "This text is {label}.",
    "This is {label}.",
    "This review is {label}.",
    "A {label} text.",
    "This message is about {label}.",
    "It is {label}.",
    "Topic: {label}.",
    "Overall, {label}.",
)
# MiniLM and e5 mixed client-side at these weights of e5, besides the mix the server serves
# (apps/model/ensemble.py), to show how the served weight was chosen.
MIX_WEIGHTS = (0.5, 0.7, 0.8)
MINILM, E5, BOTH = "all-MiniLM-L6-v2", "multilingual-e5-small", "minilm-e5-small"


@dataclass(frozen=True, slots=True)
class Split:
    name: str
    about: str
    labels: list[str]
    texts: list[str]
    truth: list[int]
    dev: list[bool]

    @classmethod
    def load(cls, path: Path) -> Split:
        raw = json.loads(path.read_text())
        seen: dict[str, int] = {}
        dev = []
        for item in raw["items"]:
            nth = seen.get(item["label"], 0)
            seen[item["label"]] = nth + 1
            dev.append(nth % 3 == 0)
        labels = list(raw["labels"])
        truth = [labels.index(item["label"]) for item in raw["items"]]
        texts = [item["text"] for item in raw["items"]]
        return cls(raw["name"], raw["about"], labels, texts, truth, dev)

    def counts(self) -> tuple[int, int]:
        return sum(self.dev), len(self.dev) - sum(self.dev)


def load_splits() -> list[Split]:
    return [Split.load(path) for path in sorted(DATA.glob("*.json"))]


class Vectoriser:
    """Unit vectors from one model id at an endpoint, cached; or two ids mixed client-side."""

    def __init__(self, client: OpenAI) -> None:
        self.client = client
        self._cache: dict[tuple[str, str], Vectors] = {}

    def vectors(self, model: str, texts: Sequence[str]) -> Vectors:
        if model.startswith("mix:"):
            weight = float(model.split(":")[1])
            parts = (self.vectors(MINILM, texts), self.vectors(E5, texts))
            mixed = np.concatenate([parts[0] * np.sqrt(1 - weight), parts[1] * np.sqrt(weight)], 1)
            return mixed.astype(np.float32)
        missing = list(dict.fromkeys(t for t in texts if (model, t) not in self._cache))
        for start in range(0, len(missing), 64):
            batch = missing[start : start + 64]
            resp = self.client.embeddings.create(model=model, input=batch)
            for text, item in zip(batch, sorted(resp.data, key=lambda d: d.index), strict=True):
                vector = np.asarray(item.embedding, dtype=np.float32)
                self._cache[(model, text)] = vector / np.linalg.norm(vector)
        return np.stack([self._cache[(model, t)] for t in texts])


@dataclass(frozen=True, slots=True)
class Score:
    model: str
    templates: tuple[str, ...]
    dev: dict[str, float]  # set -> accuracy on its dev items
    test: dict[str, float]  # set -> accuracy on its test items

    @property
    def dev_mean(self) -> float:
        return float(np.mean(list(self.dev.values())))

    @property
    def test_mean(self) -> float:
        return float(np.mean(list(self.test.values())))


def _score(vec: Vectoriser, model: str, templates: tuple[str, ...], splits: list[Split]) -> Score:
    dev, test = {}, {}
    for split in splits:
        groups = [zero_shot.prototype_texts(LabelSpec(label), templates) for label in split.labels]
        flat = [t for group in groups for t in group]
        prototypes = zero_shot.prototypes(vec.vectors(model, flat), [len(g) for g in groups])
        predicted = np.argmax(vec.vectors(model, split.texts) @ prototypes.T, axis=1)
        right = predicted == np.array(split.truth)
        mask = np.array(split.dev)
        dev[split.name] = float(right[mask].mean())
        test[split.name] = float(right[~mask].mean())
    return Score(model, templates, dev, test)


def rank(client: OpenAI, served: list[str], splits: list[Split]) -> list[Score]:
    """Every recipe, best on dev first (ties: fewer templates, then the order tried)."""
    vec = Vectoriser(client)
    models = [m for m in (MINILM, E5, BOTH) if m in served]
    if MINILM in served and E5 in served:
        models += [f"mix:{w}" for w in MIX_WEIGHTS]
    wordings = [(t,) for t in TEMPLATES] + list(itertools.combinations(TEMPLATES, 2))
    scores = [_score(vec, m, w, splits) for m in models for w in wordings]
    return sorted(scores, key=lambda s: (-s.dev_mean, len(s.templates)))


@dataclass(frozen=True, slots=True)
class ChatScore:
    test: dict[str, float]
    seconds_per_item: float


def chat_on_test(client: OpenAI, model: str, splits: list[Split]) -> ChatScore:
    """The chat model picking one label (its answer constrained to the label names)."""
    test: dict[str, float] = {}
    items = 0
    started = time.perf_counter()
    for split in splits:
        schema: dict[str, object] = {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": split.labels}},
            "required": ["label"],
        }
        response_format: ResponseFormatJSONSchema = {
            "type": "json_schema",
            "json_schema": {"name": "label", "schema": schema},
        }
        system = f"Classify the text as one of: {', '.join(split.labels)}."
        hits = []
        for text, truth, dev in zip(split.texts, split.truth, split.dev, strict=True):
            if dev:
                continue
            resp = client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": text},
                ],
                temperature=0,
                max_tokens=40,
                response_format=response_format,
            )
            try:
                label = json.loads(resp.choices[0].message.content or "{}").get("label")
            except json.JSONDecodeError:
                label = None
            hits.append(label == split.labels[truth])
            items += 1
        test[split.name] = float(np.mean(hits))
    return ChatScore(test, (time.perf_counter() - started) / max(items, 1))


def speed_ms(client: OpenAI, model: str, texts: list[str]) -> float:
    """Milliseconds per request of one text (what one classify job's text costs)."""
    client.embeddings.create(model=model, input=texts[:1])
    started = time.perf_counter()
    for text in texts:
        client.embeddings.create(model=model, input=[text])
    return 1000 * (time.perf_counter() - started) / len(texts)
