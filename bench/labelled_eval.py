"""Bare-label classification on the held-out sets of bench/data/labelled (issue 16).

Each set is split by label: the first of every three items of a label is `dev`, the other
two are `test`. Recipes (an embedder or a mix of two, and the label templates) are ranked on
dev alone; the winner is the default (zero_shot.DEFAULT_TEMPLATES with the `local-classify`
profile), and its test accuracy is the figure docs/local-model.md reports. Nothing is tuned
on test.

Dev has about a hundred texts, so one text moves a set's accuracy by 2 to 7 points, and
dozens of e5 + bge recipes tie at the top. A recipe is therefore ranked by its *plateau*:
its dev accuracy averaged with that of its neighbours in the e5 + bge grid (the next bge
weight and the next centring weight either side, same templates). A setting whose
neighbours are as good is less likely to be a lucky peak on a hundred texts. Recipes
outside that grid count their own dev accuracy.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from openai import OpenAI
from openai.types.shared_params import ResponseFormatJSONSchema

from apps.model import ensemble
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
# Embedders mixed client-side, besides the mix the server serves (apps/model/ensemble.py), to
# show how it was chosen: (the two model ids, the second's weights, the centring weights).
# Each part is centred on its own vector for ensemble.CONTENT_FREE, as the server does.
MINILM, E5, BGE = "all-MiniLM-L6-v2", "multilingual-e5-small", "bge-small-en-v1.5"
BOTH = ensemble.MODEL_ID
E5_BGE_WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)  # bge's weight
E5_BGE_CENTRES = (0.0, 0.25, 0.5, 0.75, 1.0)
MIXES = (
    ((E5, BGE), E5_BGE_WEIGHTS, E5_BGE_CENTRES),
    ((MINILM, E5), (0.8, 0.9), (0.0, 0.5)),
)


def mix_id(first: str, second: str, second_weight: float, centre: float) -> str:
    return f"mix:{first}+{second}:{second_weight}:{centre}"


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
            return self._mixed(model, texts)
        missing = list(dict.fromkeys(t for t in texts if (model, t) not in self._cache))
        for start in range(0, len(missing), 64):
            batch = missing[start : start + 64]
            resp = self.client.embeddings.create(model=model, input=batch)
            for text, item in zip(batch, sorted(resp.data, key=lambda d: d.index), strict=True):
                vector = np.asarray(item.embedding, dtype=np.float32)
                self._cache[(model, text)] = vector / np.linalg.norm(vector)
        return np.stack([self._cache[(model, t)] for t in texts])

    def _mixed(self, model: str, texts: Sequence[str]) -> Vectors:
        names, second_weight, centre = model.removeprefix("mix:").split(":")
        weights = (1 - float(second_weight), float(second_weight))
        blocks = []
        for name, weight in zip(names.split("+"), weights, strict=True):
            part = self.vectors(name, texts)
            part = part - float(centre) * self.vectors(name, [ensemble.CONTENT_FREE])[0]
            blocks.append(part / np.linalg.norm(part, axis=1, keepdims=True) * np.sqrt(weight))
        return np.concatenate(blocks, 1).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Score:
    model: str
    templates: tuple[str, ...]
    dev: dict[str, float]  # set -> accuracy on its dev items
    test: dict[str, float]  # set -> accuracy on its test items
    plateau: float | None = None  # mean dev over the e5 + bge grid neighbours (module doc)

    @property
    def dev_mean(self) -> float:
        return float(np.mean(list(self.dev.values())))

    @property
    def test_mean(self) -> float:
        return float(np.mean(list(self.test.values())))

    @property
    def rank_key(self) -> float:
        return self.dev_mean if self.plateau is None else self.plateau


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
    """Every recipe, best on dev first: by plateau (module doc), then dev accuracy itself,
    then fewer templates, then the order tried, which puts the served models before their
    client-side twins."""
    vec = Vectoriser(client)
    models = [m for m in (BOTH, E5, BGE, MINILM) if m in served]
    for (first, second), second_weights, centres in MIXES:
        if first in served and second in served:
            models += [
                mix_id(first, second, w, c)
                for w, c in itertools.product(second_weights, centres)
                # The served mix itself, already tried under its own id.
                if (first, second, 1 - w, c)
                != (E5, BGE, ensemble.E5_WEIGHT, ensemble.CENTRE_WEIGHT)
            ]
    wordings = [(t,) for t in TEMPLATES] + list(itertools.combinations(TEMPLATES, 2))
    scores = [_score(vec, m, w, splits) for m in models for w in wordings]
    scores = _with_plateaus(scores)
    return sorted(scores, key=lambda s: (-s.rank_key, -s.dev_mean, len(s.templates)))


def _grid_point(model: str) -> tuple[float, float] | None:
    """(bge weight, centring weight) of an e5 + bge recipe, served or mixed; else None."""
    if model == BOTH:
        return round(1 - ensemble.E5_WEIGHT, 2), ensemble.CENTRE_WEIGHT
    prefix = f"mix:{E5}+{BGE}:"
    if not model.startswith(prefix):
        return None
    weight, centre = model.removeprefix(prefix).split(":")
    return float(weight), float(centre)


def _with_plateaus(scores: list[Score]) -> list[Score]:
    grid: dict[tuple[tuple[str, ...], float, float], float] = {}
    for s in scores:
        point = _grid_point(s.model)
        if point is not None:
            grid[(s.templates, *point)] = s.dev_mean
    out = []
    for s in scores:
        point = _grid_point(s.model)
        if point is None or point[0] not in E5_BGE_WEIGHTS or point[1] not in E5_BGE_CENTRES:
            out.append(s)
            continue
        w, c = E5_BGE_WEIGHTS.index(point[0]), E5_BGE_CENTRES.index(point[1])
        near = [
            grid[(s.templates, E5_BGE_WEIGHTS[i], E5_BGE_CENTRES[j])]
            for i in range(max(w - 1, 0), min(w + 2, len(E5_BGE_WEIGHTS)))
            for j in range(max(c - 1, 0), min(c + 2, len(E5_BGE_CENTRES)))
            if (s.templates, E5_BGE_WEIGHTS[i], E5_BGE_CENTRES[j]) in grid
        ]
        out.append(replace(s, plateau=float(np.mean(near))))
    return out


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
