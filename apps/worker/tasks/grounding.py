"""Keeping extraction to what the text says.

A small local model asked for a field copies it imperfectly ("INV-2024-0042-0042") or makes
one up. Two things keep it honest:

- `constrain`: each plain string field of the schema may only take a span of the input
  (an `enum` the model's grammar enforces), drawn from the lines that name the field when
  any do ("Total due: EUR 1,234.50" for `total`), else from the whole text. The model still
  chooses; it can no longer misspell or invent.
- `unsupported`: every value in the answer that the text does not contain is listed, so a
  guess is never passed off as read.
"""

from __future__ import annotations

import re
from typing import Any

# Longest span offered as a value, in words, and most spans per field: the grammar llama.cpp
# builds from an enum grows with it, and values in documents are short.
MAX_SPAN_WORDS = 6
MAX_CANDIDATES = 400
# Past this the text is a long document: spans would be too many to offer, so its answer is
# only checked (`unsupported`), not constrained.
MAX_CONSTRAINED_CHARS = 8000

# Punctuation around a span that is not part of a value ("Order #A-80009" offers "A-80009").
_STRIP = ",;:.()[]\"'#"


def _words(name: str) -> set[str]:
    """`invoice_number`, `invoiceNumber`, `Invoice number` -> {"invoice", "number"}."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return {w for w in re.split(r"[\W_]+", spaced.lower()) if len(w) > 1}


def _spans(line: str, skip: set[str]) -> list[str]:
    words = line.split()
    found = []
    for start in range(len(words)):
        for end in range(start + 1, min(len(words), start + MAX_SPAN_WORDS) + 1):
            span = " ".join(words[start:end]).strip(_STRIP)
            if not re.search(r"\w", span) or skip & _words(span):
                continue  # punctuation, or the field's own label rather than its value
            found.append(span)
    return found


def candidates(text: str, field: str) -> list[str]:
    """Spans of `text` that could be the value of `field`, nearest the field's label first."""
    label = _words(field)
    lines = [line for line in text.splitlines() if line.strip()]
    near = [line for line in lines if label & _words(line)]
    spans = [span for line in (near or lines) for span in _spans(line, label if near else set())]
    return list(dict.fromkeys(spans))[:MAX_CANDIDATES]


def _plain_string(schema: Any) -> bool:
    return (
        isinstance(schema, dict)
        and schema.get("type") == "string"
        and not {"enum", "const", "format", "pattern"} & set(schema)
    )


def constrain(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """`schema` with each top-level plain string property limited to spans of `text`."""
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict):
        return schema
    if len(text) > MAX_CONSTRAINED_CHARS:
        return schema
    constrained = dict(properties)
    for name, spec in properties.items():
        spans = candidates(text, name) if _plain_string(spec) else []
        if spans:
            constrained[name] = {**spec, "enum": spans}
    return {**schema, "properties": constrained}


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())


def _found(value: Any, text: str, digits: str) -> bool:
    if isinstance(value, bool) or value is None:
        return True  # a yes/no or an absence is not a quote; nothing to find
    if isinstance(value, int | float):
        plain = f"{value:f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
        return plain.replace(",", "") in digits
    return _normal(str(value)) in text


def unsupported(data: Any, text: str) -> list[str]:
    """JSON pointers of the string and number values in `data` that `text` does not contain
    (compared without case, spacing or thousands separators)."""
    normal, digits = _normal(text), text.replace(",", "")
    out: list[str] = []

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{pointer}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{pointer}/{index}")
        elif not _found(node, normal, digits):
            out.append(pointer or "/")

    walk(data, "")
    return out
