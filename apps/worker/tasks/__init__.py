"""What the worker runs for each task name in jobrelay.tasks.TASKS."""

from collections.abc import Awaitable, Callable

from apps.worker.models import ModelClient
from apps.worker.tasks import (
    chat,
    classify,
    describe_image,
    embed,
    extract,
    read_document,
    summarize,
)
from jobrelay.contract import JobRecord, JobResult

TaskRunner = Callable[[JobRecord, ModelClient], Awaitable[JobResult]]

RUNNERS: dict[str, TaskRunner] = {
    "classify": classify.run,
    "embed": embed.run,
    "summarize": summarize.run,
    "extract": extract.run,
    "chat": chat.run,
    "describe_image": describe_image.run,
    "read_document": read_document.run,
}
