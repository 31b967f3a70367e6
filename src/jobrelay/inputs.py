"""Which inputs each task takes: text, and which uploaded file types.

Intake refuses what a task cannot take (415 for a file type, 422 for a missing file), so a
worker only ever meets inputs it can read.
"""

from __future__ import annotations

from dataclasses import dataclass

# Documents read as UTF-8 text by the text tasks.
TEXT_FILE_TYPES = frozenset({"text/plain", "text/markdown", "text/csv", "application/json"})
IMAGE_FILE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})


@dataclass(frozen=True, slots=True)
class Accepts:
    text: bool  # takes `input.text`
    file_types: frozenset[str]  # takes an uploaded file of these media types
    required: bool = True  # needs an input at all (chat's input is in its messages)

    def describe(self) -> str:
        if not self.file_types:
            return "text only"
        kinds = sorted(self.file_types)
        return ("text or " if self.text else "") + "a file of type " + ", ".join(kinds)


_TEXT_TASK = Accepts(text=True, file_types=TEXT_FILE_TYPES)

ACCEPTS: dict[str, Accepts] = {
    "classify": _TEXT_TASK,
    "embed": _TEXT_TASK,
    "summarize": _TEXT_TASK,
    "extract": _TEXT_TASK,
    "chat": Accepts(text=True, file_types=frozenset(), required=False),
    "describe_image": Accepts(text=False, file_types=IMAGE_FILE_TYPES),
}


def accepts(task: str) -> Accepts:
    return ACCEPTS.get(task, _TEXT_TASK)


def media_type(content_type: str) -> str:
    """`text/plain; charset=utf-8` -> `text/plain`."""
    return content_type.split(";", 1)[0].strip().lower()
