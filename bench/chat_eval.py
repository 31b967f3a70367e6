"""The local chat model on extraction and summaries (issue 16), measured for docs/local-model.md.

- Extraction: four fields from each of 20 invoices and orders (bench/data/chat/invoices.json),
  asked the way the `extract` task asks, without and with its grounding (plain string fields
  limited to spans of the text). A field is right when it equals the true value (case and
  spacing aside; a total may keep its currency); it is *invented* when the text does not
  hold it at all.
- Summaries: ten short texts (summaries.json), summarised the way the `summarize` task does.
  A summary is *faithful* here when every number and every capitalised name it states
  (other than its first word) appears in its text: a narrow check, but one that catches the
  invented figures and names small models are prone to.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openai import OpenAI

from apps.worker.tasks import extract, grounding

DATA = Path(__file__).resolve().parent / "data" / "chat"
MAX_SUMMARY_WORDS = 30


@dataclass(frozen=True, slots=True)
class ExtractionScore:
    recipe: str
    right: dict[str, float]  # field -> share of documents right
    # Share of all values the text does not hold: each of them is one that the task lists in
    # `unsupported` beside the data, by the same check.
    invented: float
    seconds_per_document: float

    @property
    def overall(self) -> float:
        return sum(self.right.values()) / len(self.right)


def _same(field: str, got: Any, truth: str) -> bool:
    value = " ".join(str(got).casefold().split())
    if field == "total":
        return truth.casefold() in value and not re.search(r"\d", value.replace(truth, ""))
    return value == truth.casefold()


def extraction(client: OpenAI, model: str, grounded: bool) -> ExtractionScore:
    raw = json.loads((DATA / "invoices.json").read_text())
    schema, items = raw["schema"], raw["items"]
    right = {field: 0 for field in schema["properties"]}
    invented = values = 0
    started = time.perf_counter()
    for item in items:
        body = extract.request(schema, None, item["text"], grounded)
        resp = client.chat.completions.create(model=model, **body)
        try:
            data = json.loads(resp.choices[0].message.content or "{}")
        except json.JSONDecodeError:
            data = {}
        marked = set(grounding.unsupported(data, item["text"]))
        for field, truth in item["fields"].items():
            got = data.get(field)
            right[field] += _same(field, got, truth)
            values += 1
            invented += f"/{field}" in marked
    seconds = (time.perf_counter() - started) / len(items)
    recipe = "grounded (spans of the text)" if grounded else "schema only"
    return ExtractionScore(
        recipe,
        {field: hits / len(items) for field, hits in right.items()},
        invented / max(values, 1),
        seconds,
    )


@dataclass(frozen=True, slots=True)
class SummaryScore:
    faithful: float
    mean_words: float
    seconds_per_text: float
    unfaithful_examples: list[tuple[str, list[str]]]


def _claims(summary: str) -> list[str]:
    words = summary.split()
    numbers = re.findall(r"\d[\d,.]*\d|\d", summary)
    names = [w.strip(".,;:!?'\"()") for w in words[1:] if w[:1].isupper()]
    return [*numbers, *[n for n in names if n]]


def summaries(client: OpenAI, model: str) -> SummaryScore:
    texts = json.loads((DATA / "summaries.json").read_text())["items"]
    faithful, lengths = 0, []
    bad: list[tuple[str, list[str]]] = []
    started = time.perf_counter()
    for text in texts:
        resp = client.chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "system",
                    "content": f"Summarize the user's text in at most {MAX_SUMMARY_WORDS} "
                    "words. Reply with the summary only.",
                },
                {"role": "user", "content": text},
            ],
            max_tokens=MAX_SUMMARY_WORDS * 2 + 16,
            temperature=0.2,
        )
        summary = (resp.choices[0].message.content or "").strip()
        lengths.append(len(summary.split()))
        missing = [c for c in _claims(summary) if c.casefold() not in text.casefold()]
        if missing:
            bad.append((summary, missing))
        else:
            faithful += 1
    seconds = (time.perf_counter() - started) / len(texts)
    return SummaryScore(faithful / len(texts), sum(lengths) / len(lengths), seconds, bad[:3])
