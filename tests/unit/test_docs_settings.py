"""Every `JOBRELAY_*` variable the README and docs/ name is one that something reads: a
field of a settings class, or a variable of the scripts, components and manifests that set
up the apps. A renamed or removed setting fails here until the docs follow."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

import apps.intake.settings
import apps.model.settings
import apps.status.settings
import apps.worker.settings
import jobrelay.auth
import jobrelay.client.settings
import jobrelay.lanes
import jobrelay.settings
import jobrelay.task_limits
import jobrelay.telemetry
import jobrelay.webhook_targets
from tests.doc_examples import ROOT, pages

_VARIABLE = re.compile(r"\bJOBRELAY_[A-Z0-9_]*[A-Z0-9]")
# The shell and YAML files that read variables of their own (setup, profiles, components).
_TOOLING = ("scripts", "components", "k8s", "Makefile", "dapr.yaml", "tests", "bench", "config")
_SETTINGS_MODULES = (
    apps.intake.settings,
    apps.model.settings,
    apps.status.settings,
    apps.worker.settings,
    jobrelay.auth,
    jobrelay.client.settings,
    jobrelay.lanes,
    jobrelay.settings,
    jobrelay.task_limits,
    jobrelay.telemetry,
    jobrelay.webhook_targets,
)


def _settings_classes() -> set[type[BaseSettings]]:
    found: set[type[BaseSettings]] = set()
    for module in _SETTINGS_MODULES:
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseSettings):
                found.add(value)
    return found


def _read_by_settings() -> set[str]:
    names: set[str] = set()
    for cls in _settings_classes():
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, field in cls.model_fields.items():
            names.add(f"{prefix}{name}".upper())
            if isinstance(field.validation_alias, AliasChoices):
                names.update(str(c).upper() for c in field.validation_alias.choices)
    return names


def _read_by_tooling() -> set[str]:
    files = subprocess.run(
        ["git", "ls-files", *_TOOLING], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    names: set[str] = set()
    for name in files:
        path = ROOT / name
        if path.suffix not in (".md", ".png", ".json", ".jsonl", ".csv") and path.is_file():
            names.update(_VARIABLE.findall(path.read_text(errors="ignore")))
    return names


def _named_in(page: Path) -> set[str]:
    # `JOBRELAY_<APP>_PORT` and `JOBRELAY_LIMIT_*` stand for a family, not one name.
    text = page.read_text()
    return {
        m.group()
        for m in _VARIABLE.finditer(text)
        if text[m.end() : m.end() + 2] not in ("_*", "_<")
    }


def test_every_variable_the_docs_name_is_read_by_something() -> None:
    known = _read_by_settings() | _read_by_tooling()
    unknown = {
        f"{page.relative_to(ROOT)}: {name}"
        for page in pages()
        for name in _named_in(page)
        if name not in known
    }
    assert not unknown, sorted(unknown)
