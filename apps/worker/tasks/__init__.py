"""What the worker runs for each task of jobrelay.task_catalog: the `run` of the module each
task names, resolved once at start-up."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from typing import cast

from apps.worker.model_client import ModelClient
from jobrelay.contract import JobRecord, JobResult
from jobrelay.task_catalog import TASKS, Task

TaskRunner = Callable[[JobRecord, ModelClient], Awaitable[JobResult]]


class MissingRunner(Exception):
    """A task names a runner module that does not exist or has no `run`."""


def load_runners(tasks: Mapping[str, Task] = TASKS) -> dict[str, TaskRunner]:
    """Each task's runner; MissingRunner (the worker does not start) if one has none."""
    runners: dict[str, TaskRunner] = {}
    for name, task in tasks.items():
        try:
            run = getattr(importlib.import_module(task.runner), "run", None)
        except ModuleNotFoundError as exc:
            raise MissingRunner(f"task {name}: no runner module {task.runner}") from exc
        if not callable(run):
            raise MissingRunner(f"task {name}: {task.runner} has no `run`")
        runners[name] = cast(TaskRunner, run)
    return runners
