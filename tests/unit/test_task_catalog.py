"""One definition of a task (jobrelay.task_catalog), and the worker's start-up checks of it:
a runner for every task, and a model chain that can run it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from apps.worker.profiles import Catalog, load_catalog
from apps.worker.tasks import MissingRunner, load_runners
from jobrelay.task_catalog import TASKS, Capability, UnknownTask, get_task

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_every_task_has_a_runner() -> None:
    assert set(load_runners()) == set(TASKS)


def test_a_task_without_a_runner_stops_the_start() -> None:
    broken = {"classify": replace(TASKS["classify"], runner="apps.worker.tasks.nothing_here")}
    with pytest.raises(MissingRunner, match="classify"):
        load_runners(broken)


@pytest.mark.parametrize("name", ["models.yaml", "models.example.yaml"])
def test_the_shipped_models_files_have_a_chain_for_every_task(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for env in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.setenv(env, "x")
    unserved = load_catalog(CONFIG / name).check(TASKS)
    assert set(unserved) <= {"describe_image"}  # no vision model ships with jobrelay


def _catalog(tasks: dict[str, list[str]]) -> Catalog:
    profile = {"name": "chat", "base_url": "http://x/v1", "model": "m", "capabilities": ["chat"]}
    return Catalog.model_validate({"profiles": {"chat": profile}, "tasks": tasks})


def test_a_task_missing_from_the_models_file_stops_the_start() -> None:
    tasks: dict[str, list[str]] = {name: [] for name in TASKS if name != "summarize"}
    with pytest.raises(ValueError, match="missing: summarize"):
        _catalog(tasks).check(TASKS)


def test_a_chain_that_cannot_do_what_its_task_needs_stops_the_start() -> None:
    tasks: dict[str, list[str]] = {name: [] for name in TASKS} | {"embed": ["chat"]}
    with pytest.raises(ValueError, match="embed needs embeddings"):
        _catalog(tasks).check(TASKS)


def test_an_empty_chain_serves_none_and_is_reported() -> None:
    tasks: dict[str, list[str]] = {name: [] for name in TASKS}
    unserved = _catalog(tasks).check(TASKS)
    assert set(unserved) == {n for n, t in TASKS.items() if t.capability is not None}


def test_a_task_needs_a_capability_unless_it_runs_offline() -> None:
    assert get_task("read_document").capability is None
    assert get_task("embed").capability is Capability.EMBEDDINGS
    with pytest.raises(UnknownTask, match="known tasks"):
        get_task("nope")
