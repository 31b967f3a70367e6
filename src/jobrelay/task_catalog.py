"""Every task jobrelay runs, defined once: the parameters it takes, the inputs it accepts, the
model capability it needs and the worker module that runs it.

Intake takes a task's params model and accepted inputs from here to refuse a bad job at
submit. The worker resolves every runner and checks every task's model chain
(config/models.yaml) at start-up, so a task without either fails the worker's start, not a
job an hour later.

To add a task: its params model in jobrelay.task_params, a module under apps/worker/tasks/
with `async def run(record, models) -> JobResult`, a `Task` below, and its model chain under
`tasks:` in config/models.yaml (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jobrelay.accepted_inputs import (
    DOCUMENT_FILE_TYPES,
    IMAGE_FILE_TYPES,
    TEXT_FILE_TYPES,
    Accepts,
)
from jobrelay.task_params import (
    ChatParams,
    ClassifyParams,
    DescribeImageParams,
    EmbedParams,
    ExtractParams,
    ReadDocumentParams,
    SummarizeParams,
    TaskParams,
)


class Capability(StrEnum):
    """What a model profile can do (config/models.yaml `capabilities`)."""

    CHAT = "chat"  # chat completions
    EMBEDDINGS = "embeddings"  # embeddings
    VISION = "vision"  # chat completions that take images


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    params: type[TaskParams]  # validated at submit, and again by the worker's runner
    accepts: Accepts  # text, and which uploaded file types
    # The model capability the task cannot run without; None for a task that runs without
    # a model (its chain's profiles add optional parts: read_document's summary).
    capability: Capability | None
    runner: str  # the module whose `run` the worker calls (importable in the worker only)

    def parse(self, params: dict[str, Any]) -> TaskParams:
        """The typed parameters; pydantic's ValidationError if they are wrong."""
        return self.params.model_validate(params)


_DOCUMENTS = TEXT_FILE_TYPES | DOCUMENT_FILE_TYPES
# Summaries and extraction read long documents; what the embedders read is far shorter.
_LONG_TEXT_CHARS = 200_000

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "classify",
            ClassifyParams,
            Accepts(text=True, file_types=_DOCUMENTS),
            Capability.EMBEDDINGS,
            "apps.worker.tasks.classify",
        ),
        Task(
            "embed",
            EmbedParams,
            Accepts(text=True, file_types=TEXT_FILE_TYPES),
            Capability.EMBEDDINGS,
            "apps.worker.tasks.embed",
        ),
        Task(
            "summarize",
            SummarizeParams,
            Accepts(text=True, file_types=_DOCUMENTS, max_text_chars=_LONG_TEXT_CHARS),
            Capability.CHAT,
            "apps.worker.tasks.summarize",
        ),
        Task(
            "extract",
            ExtractParams,
            Accepts(text=True, file_types=_DOCUMENTS, max_text_chars=_LONG_TEXT_CHARS),
            Capability.CHAT,
            "apps.worker.tasks.extract",
        ),
        Task(
            "chat",
            ChatParams,
            # Its input is in its messages; a text is the user's last turn.
            Accepts(text=True, file_types=frozenset(), required=False, max_text_chars=100_000),
            Capability.CHAT,
            "apps.worker.tasks.chat",
        ),
        Task(
            "describe_image",
            DescribeImageParams,
            Accepts(text=False, file_types=IMAGE_FILE_TYPES),
            Capability.VISION,
            "apps.worker.tasks.describe_image",
        ),
        Task(
            "read_document",
            ReadDocumentParams,
            Accepts(text=False, file_types=DOCUMENT_FILE_TYPES),
            None,  # read offline (tesseract, poppler)
            "apps.worker.tasks.read_document",
        ),
    )
}


class UnknownTask(Exception):
    def __init__(self, task: str) -> None:
        super().__init__(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}")


def get_task(name: str) -> Task:
    """The task called `name`; UnknownTask if there is none."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTask(name) from None


def parse_params(task: str, params: dict[str, Any]) -> TaskParams:
    """The typed parameters of `task`; UnknownTask or pydantic's ValidationError if wrong."""
    return get_task(task).parse(params)
